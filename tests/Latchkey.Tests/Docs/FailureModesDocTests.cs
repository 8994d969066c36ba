using Latchkey.Tests.Security;

namespace Latchkey.Tests.Docs;

/// <summary>
/// docs/failure-modes.md names, for each failure mode Latchkey prevents, the tests that show it. A test renamed or
/// deleted without the page following fails here, as <see cref="SecurityDocTests"/> does for docs/security.md.
/// </summary>
public sealed class FailureModesDocTests
{
    [Fact]
    public void FailureModesDoc_EveryNamedTest_ExistsInTheSuite()
    {
        var doc = File.ReadAllText(Path.Combine(Processes.RepoRoot, "docs", "failure-modes.md"));
        var tests = SecurityDocTests.ReadTestMethods(Path.Combine(Processes.RepoRoot, "tests"));

        var named = SecurityDocTests.NamedTests(doc).ToList();

        Assert.True(named.Count > 40, $"docs/failure-modes.md names only {named.Count} tests; the reference pattern may have changed");
        var missing = named.Where(n => !tests.Contains(n)).Distinct().ToList();
        Assert.True(missing.Count == 0, "docs/failure-modes.md names tests that do not exist: " + string.Join(", ", missing));
    }
}
