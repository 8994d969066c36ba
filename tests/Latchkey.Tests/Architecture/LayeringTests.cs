namespace Latchkey.Tests.Architecture;

/// <summary>
/// Folders import one way, as docs/architecture.md draws it (<see cref="Layers"/>): every C# file under
/// <c>src/</c> is read, and a file that uses a folder drawn above its own, or beside it, fails the build's tests.
/// </summary>
public sealed class LayeringTests
{
    private static readonly string Root = FindRoot();

    [Fact]
    public void Sources_EveryNamespaceTheyUse_FollowsTheDrawnDirection()
    {
        var files = Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/'))
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();

        var violations = files.SelectMany(f => Layers.Check(f, File.ReadAllText(Path.Combine(Root, f)))).ToList();

        Assert.True(files.Count > 100, $"expected the whole src/ tree, read {files.Count} files under {Root}");
        Assert.True(violations.Count == 0, "Imports against the direction drawn in docs/architecture.md:\n" + string.Join('\n', violations));
    }

    [Theory]
    [InlineData("src/Latchkey/Dashboard/X.cs", "using Latchkey.Cli;\nnamespace Latchkey.Dashboard;\n", "Dashboard uses Cli")]
    [InlineData("src/Latchkey/Gateway/X.cs", "namespace Latchkey.Gateway;\nclass X { void M() => Cli.ExitCodes.Usage.ToString(); }\n", "Gateway uses Cli")]
    [InlineData("src/Latchkey/Gateway/X.cs", "namespace Latchkey.Gateway;\nclass X { object M() => new Latchkey.Dashboard.Html(); }\n", "Gateway uses Dashboard")]
    [InlineData("src/Latchkey/Mcp/X.cs", "using Latchkey.Dashboard;\nnamespace Latchkey.Mcp;\n", "Mcp uses Dashboard")]
    [InlineData("src/Latchkey/Ssh/X.cs", "using static Latchkey.Local.NativeMethods;\nnamespace Latchkey.Ssh;\n", "Ssh uses Local")]
    [InlineData("src/Latchkey.Core/Store/X.cs", "namespace Latchkey.Store;\n/// <summary>See <see cref=\"Gateway.Forwarder\"/>.</summary>\nclass X;\n", "Store uses Gateway")]
    [InlineData("src/Latchkey.Core/Tokens/X.cs", "using Latchkey.Composition;\nnamespace Latchkey.Tokens;\n", "Tokens uses Composition")]
    [InlineData("src/Latchkey.Core/Http/X.cs", "namespace Latchkey.Http;\nclass X { string M(int n) => $\"{n} {Diagnostics.ServerText.MaxCodeLength}\"; }\n", "Http uses Diagnostics")]
    [InlineData("src/Latchkey.Token/X.cs", "using Latchkey.Cli;\nnamespace Latchkey;\n", "latchkey-token uses Cli")]
    public void Check_UseAgainstTheDirection_IsReported(string path, string source, string expected)
    {
        var violations = Layers.Check(path, source).ToList();

        Assert.Contains(violations, v => v.Problem.Contains(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("src/Latchkey/Cli/X.cs", "using Latchkey.Hosting;\nusing Latchkey.Local;\nnamespace Latchkey.Cli;\n")]
    [InlineData("src/Latchkey/Dashboard/X.cs", "using Latchkey.Tokens;\nnamespace Latchkey.Dashboard;\nclass X { object M() => Store.CredentialState.Ok; }\n")]
    [InlineData("src/Latchkey.Core/Audit/X.cs", "using Latchkey.Store;\nnamespace Latchkey.Audit;\n")]
    [InlineData("src/Latchkey/Gateway/X.cs", "namespace Latchkey.Gateway;\n// Cli.ExitCodes in a comment is no use\nclass X { string M() => \"Cli.Usage // not a comment\" + @\"Dashboard.\"\"Html\"; }\n")]
    public void Check_UseDownwardsOrInTextOnly_IsAllowed(string path, string source)
    {
        Assert.Empty(Layers.Check(path, source));
    }

    [Fact]
    public void Check_FileDeclaringAnotherFoldersNamespace_IsReported()
    {
        var violations = Layers.Check("src/Latchkey/Dashboard/X.cs", "namespace Latchkey.Cli;\n").ToList();

        Assert.Contains(violations, v => v.Problem.Contains("declare 'Latchkey.Dashboard'", StringComparison.Ordinal));
    }

    [Fact]
    public void Check_FileInAFolderTheDrawingLacks_IsReported()
    {
        var violations = Layers.Check("src/Latchkey/Helpers/X.cs", "namespace Latchkey.Helpers;\n").ToList();

        Assert.Contains(violations, v => v.Problem.Contains("in no layer", StringComparison.Ordinal));
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Latchkey.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Latchkey.slnx above {AppContext.BaseDirectory}.");
    }
}
