using System.Text.RegularExpressions;

namespace Latchkey.Tests.Security;

/// <summary>
/// docs/security.md is the security contract: every promise on it names the test that attacks it. These tests keep
/// the page and the suite in step: a test the page names must exist (a renamed or deleted attack test fails here),
/// and every attack test in <c>tests/Latchkey.Tests/Security/</c> must be named on the page.
/// </summary>
public sealed partial class SecurityDocTests
{
    private static readonly string Doc = File.ReadAllText(Path.Combine(Processes.RepoRoot, "docs", "security.md"));

    /// <summary>Every test method of both test projects, as <c>Class.Method</c>, read from the sources.</summary>
    private static readonly HashSet<string> TestMethods = ReadTestMethods(Path.Combine(Processes.RepoRoot, "tests"));

    [Fact]
    public void SecurityDoc_EveryNamedTest_ExistsInTheSuite()
    {
        var named = NamedTests(Doc).ToList();
        Assert.True(named.Count > 40, $"docs/security.md names only {named.Count} tests; the reference pattern may have changed");
        var missing = named.Where(n => !TestMethods.Contains(n)).Distinct().ToList();
        Assert.True(missing.Count == 0, "docs/security.md names tests that do not exist: " + string.Join(", ", missing));
    }

    [Fact]
    public void SecurityDoc_EveryAttackTest_IsNamedOnThePage()
    {
        var named = NamedTests(Doc).ToHashSet();
        var folder = Path.Combine(Processes.RepoRoot, "tests", "Latchkey.Tests", "Security");
        var attacks = ReadTestMethods(folder).Where(t => !t.StartsWith(nameof(SecurityDocTests) + ".", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(attacks);
        var unnamed = attacks.Where(a => !named.Contains(a)).Order(StringComparer.Ordinal).ToList();
        Assert.True(unnamed.Count == 0, "attack tests missing from docs/security.md: " + string.Join(", ", unnamed));
    }

    [Fact]
    public void SecurityDoc_EveryAttacker_HasAFolderOfAttacks()
    {
        foreach (var attacker in new[] { "KeyHolder", "LocalUser", "HostileServer", "DatabaseWriter", "BrowserPage", "Unauthenticated" })
        {
            var folder = Path.Combine(Processes.RepoRoot, "tests", "Latchkey.Tests", "Security", attacker);
            Assert.True(Directory.Exists(folder) && ReadTestMethods(folder).Count > 0, $"no attack tests in Security/{attacker}");
        }
    }

    /// <summary>Test references on the page: <c>`Class.Method`</c> in code spans, where Method has an underscore.</summary>
    internal static IEnumerable<string> NamedTests(string doc) =>
        TestReference().Matches(doc).Select(m => m.Groups[1].Value);

    /// <summary>
    /// The test methods under <paramref name="folder"/> as <c>Class.Method</c>: a method whose attribute lines
    /// (comments and data rows may sit between them) start with <c>[Fact</c>, <c>[Theory</c>, <c>[Property</c> or
    /// an attribute ending in <c>Fact</c>, named after the class declared at the nearest enclosing brace depth.
    /// </summary>
    internal static HashSet<string> ReadTestMethods(string folder)
    {
        var methods = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories))
        {
            var separator = Path.DirectorySeparatorChar;
            if (file.Contains($"{separator}obj{separator}", StringComparison.Ordinal) || file.Contains($"{separator}bin{separator}", StringComparison.Ordinal))
            {
                continue;
            }

            var classes = new Stack<(string Name, int Depth)>();
            var depth = 0;
            var pendingTest = false;
            foreach (var line in File.ReadLines(file))
            {
                var trimmed = line.TrimStart();
                if (ClassDeclaration().Match(line) is { Success: true } declared)
                {
                    classes.Push((declared.Groups[1].Value, depth));
                }
                else if (TestAttribute().IsMatch(line))
                {
                    pendingTest = true;
                }
                else if (pendingTest && PublicMethod().Match(line) is { Success: true } method && classes.Count > 0)
                {
                    methods.Add(classes.Peek().Name + "." + method.Groups[1].Value);
                    pendingTest = false;
                }
                else if (!trimmed.StartsWith('[') && !trimmed.StartsWith("//", StringComparison.Ordinal) && trimmed.Length > 0)
                {
                    pendingTest = false;
                }

                if (!trimmed.StartsWith("//", StringComparison.Ordinal))
                {
                    depth += line.Count(c => c == '{') - line.Count(c => c == '}');
                    while (classes.Count > 0 && depth <= classes.Peek().Depth && line.Contains('}', StringComparison.Ordinal))
                    {
                        classes.Pop();
                    }
                }
            }
        }

        return methods;
    }

    [GeneratedRegex(@"`([A-Z][A-Za-z0-9]+\.[A-Z][A-Za-z0-9]*_[A-Za-z0-9_]+)`")]
    private static partial Regex TestReference();

    [GeneratedRegex(@"^\s*(?:(?:public|internal|private|protected|sealed|abstract|static|partial|file)\s+)*(?:class|record)\s+([A-Z][A-Za-z0-9]*)")]
    private static partial Regex ClassDeclaration();

    [GeneratedRegex(@"^\s*\[(?:[A-Za-z]*Fact|Theory|Property)\b")]
    private static partial Regex TestAttribute();

    [GeneratedRegex(@"^\s*public\s+(?:async\s+)?[\w<>\[\]?,. ]+?\s([A-Z][A-Za-z0-9_]*)\s*\(")]
    private static partial Regex PublicMethod();
}
