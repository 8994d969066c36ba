using Latchkey.Tokens;

namespace Latchkey.Tests.Cli;

/// <summary>
/// <c>latchkey token NAME</c> skips the command tree for its plain shapes; every other spelling goes through it.
/// Both must give the same answer.
/// </summary>
public sealed class TokenFastPathTests : IDisposable
{
    private readonly TempHome _home = new();
    private readonly TempHome _other = new();

    public void Dispose()
    {
        _home.Dispose();
        _other.Dispose();
    }

    [Theory]
    [InlineData("token a", "a", null)]
    [InlineData("token a.b-c_1", "a.b-c_1", null)]
    [InlineData("--home /h token a", "a", "/h")]
    [InlineData("token --home /h a", "a", "/h")]
    [InlineData("token a --home /h", "a", "/h")]
    public void TryMatch_PlainShapes_Match(string line, string name, string? home)
    {
        Assert.True(TokenFastPath.TryMatch(line.Split(' '), out var matchedName, out var matchedHome));
        Assert.Equal(name, matchedName);
        Assert.Equal(home, matchedHome);
    }

    [Theory]
    [InlineData("token")]
    [InlineData("token a b")]
    [InlineData("token --help")]
    [InlineData("token a --help")]
    [InlineData("token -h")]
    [InlineData("token @args.rsp")]
    [InlineData("token -- a")]
    [InlineData("token --home=/h a")]
    [InlineData("token a --home")]
    [InlineData("token a --home --help")]
    [InlineData("token a --home @h.rsp")]
    [InlineData("--home /h --home /i token a")]
    [InlineData("list")]
    [InlineData("status a")]
    [InlineData("a token")]
    [InlineData("token [diagram]")]
    public void TryMatch_AnythingElse_GoesToTheCommandTree(string line)
    {
        Assert.False(TokenFastPath.TryMatch(line.Split(' '), out _, out _));
    }

    [Fact]
    public async Task Token_EverySpelling_PrintsTheSameSecretFromTheRightHome()
    {
        var added = await Processes.Latchkey(_other.Path, "sk-fast-path-test\n", "add", "a", "--upstream", "https://api.example.com");
        Assert.True(added.ExitCode == 0, added.ToString());

        // LATCHKEY_HOME points at an empty home: only --home finds the credential.
        foreach (var args in new[]
        {
            new[] { "--home", _other.Path, "token", "a" },       // fast path
            new[] { "token", "a", "--home", _other.Path },       // fast path
            new[] { "token", $"--home={_other.Path}", "a" },     // command tree
        })
        {
            var result = await Processes.Latchkey(_home.Path, null, args);
            Assert.True(result.ExitCode == 0, string.Join(' ', args) + ": exit " + result.ExitCode);
            Assert.Equal("sk-fast-path-test\n", result.Stdout);
            Assert.Equal(string.Empty, result.Stderr);
        }

        foreach (var args in new[] { new[] { "token", "a" }, new[] { "token", "--", "a" } })
        {
            var missing = await Processes.Latchkey(_home.Path, null, args);
            Assert.Equal(4, missing.ExitCode);
            Assert.Contains("No credential is named 'a'", missing.Stderr, StringComparison.Ordinal);
        }
    }
}
