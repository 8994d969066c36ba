namespace Latchkey.Tests.Token;

/// <summary>
/// <c>latchkey-token</c> (src/Latchkey.Token), the program <c>./latchkey</c> runs for <c>token</c> when its Native AOT
/// build is there. Run here as its plain build: the code is the same. It must serve a usable token by itself and
/// hand everything else to the full tool, so every answer equals the full tool's.
/// </summary>
public sealed class TokenProgramTests : IDisposable
{
    private const string Secret = "sk-native-token-test-5d1e";
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private Task<Processes.Result> RunTokenProgram(string fullExe, params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyTokenExe, _home.Path, args);
        info.Environment["LATCHKEY_FULL_EXE"] = fullExe;
        return Processes.Run(info, null);
    }

    private async Task AddAsync(string name)
    {
        var added = await Processes.Latchkey(_home.Path, Secret + "\n", "add", name, "--upstream", "https://api.example.com");
        Assert.True(added.ExitCode == 0, added.ToString());
    }

    [Fact]
    public async Task Main_UsableApiKey_PrintsTheSecretWithoutTheFullTool()
    {
        await AddAsync("a");

        // The full tool is named as a path that does not exist: the answer can only come from the program itself.
        var result = await RunTokenProgram(Path.Combine(_home.Path, "no-such-latchkey"), "token", "a");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(Secret + "\n", result.Stdout);
        Assert.Equal(string.Empty, result.Stderr);
    }

    [Theory]
    [InlineData("token", "missing")]
    [InlineData("token", "a", "--json")]
    [InlineData("list")]
    [InlineData("status", "a")]
    [InlineData("token", "--", "a")]
    public async Task Main_AnythingItDoesNotServe_AnswersExactlyAsTheFullTool(params string[] args)
    {
        await AddAsync("a");

        var full = await Processes.Latchkey(_home.Path, null, args);
        var handed = await RunTokenProgram(Processes.LatchkeyExe, args);

        Assert.Equal(full.ExitCode, handed.ExitCode);
        Assert.Equal(full.Stdout, handed.Stdout);
        Assert.Equal(full.Stderr, handed.Stderr);
    }

    [Fact]
    public async Task Main_UnknownCredential_ExitsFourWithTheFullToolsMessage()
    {
        var result = await RunTokenProgram(Processes.LatchkeyExe, "token", "missing");

        Assert.Equal(4, result.ExitCode);
        Assert.Contains("No credential is named 'missing'", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task Main_FullToolMissing_SaysWhereItLookedAndWhatToDo()
    {
        var nowhere = Path.Combine(_home.Path, "no-such-latchkey");

        var result = await RunTokenProgram(nowhere, "list");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(nowhere, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("LATCHKEY_FULL_EXE", result.Stderr, StringComparison.Ordinal);
    }
}
