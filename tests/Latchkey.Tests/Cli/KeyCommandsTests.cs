using System.Text.Json;

namespace Latchkey.Tests.Cli;

/// <summary><c>latchkey keys create|set|list</c> with limits, run as the real <c>latchkey</c> executable.</summary>
public sealed class KeyCommandsTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private Task<Processes.Result> Run(params string[] args) => Processes.Latchkey(_home.Path, null, args);

    [Fact]
    public async Task CreateSetList_Limits_ShownInTheTableAndJsonAndChangedOneAtATime()
    {
        var created = await Run("keys", "create", "ci-bot", "--credential", "anthropic", "--rate", "60/min", "--tokens", "2000000/day", "--concurrent", "4");
        var set = await Run("keys", "set", "ci-bot", "--rate", "10/s", "--concurrent", "none");
        var table = await Run("keys", "list");
        var json = await Run("keys", "list", "--json");

        Assert.True(created.ExitCode == 0, created.ToString());
        Assert.Contains("limited to 60/min, 2000000 tokens/day, 4 at once", created.Stderr, StringComparison.Ordinal);
        Assert.True(set.ExitCode == 0, set.ToString());
        Assert.Contains("10/s, 2000000 tokens/day", set.Stdout, StringComparison.Ordinal);
        Assert.Contains("LIMITS", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("10/s, 2000000 tokens/day", table.Stdout, StringComparison.Ordinal);
        using var document = JsonDocument.Parse(json.Stdout);
        var limits = document.RootElement.EnumerateArray().Single().GetProperty("limits");
        Assert.Equal("10/s", limits.GetProperty("rate").GetString());
        Assert.Equal(2_000_000, limits.GetProperty("tokens_per_day").GetInt64());
        Assert.Equal(JsonValueKind.Null, limits.GetProperty("concurrent").ValueKind);
        Assert.False(limits.TryGetProperty("text", out _));

        var cleared = await Run("keys", "set", "ci-bot", "--rate", "none", "--tokens", "none");
        using var after = JsonDocument.Parse((await Run("keys", "list", "--json")).Stdout);
        Assert.Contains("nothing (no limits)", cleared.Stdout, StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, after.RootElement.EnumerateArray().Single().GetProperty("limits").ValueKind);
    }

    [Theory]
    [InlineData("--rate", "60/fortnight", "'fortnight' is not a unit", "60/min")]
    [InlineData("--rate", "sixty/min", "'sixty' is not a whole number", "1000/hour")]
    [InlineData("--tokens", "5000/hour", "tokens are counted per UTC day", "2000000/day")]
    [InlineData("--concurrent", "0", "whole number from 1 to", "e.g. 4")]
    public async Task Create_MalformedLimit_UsageErrorNamingTheValueAndTheAcceptedForms(string option, string value, string problem, string form)
    {
        var result = await Run("keys", "create", "k", "--credential", "a", option, value);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(option, result.Stderr, StringComparison.Ordinal);
        Assert.Contains(problem, result.Stderr, StringComparison.Ordinal);
        Assert.Contains(form, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("No client keys yet", (await Run("keys", "list")).Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Set_NothingGivenOrNoSuchKey_Refused()
    {
        Assert.Equal(0, (await Run("keys", "create", "k", "--credential", "a")).ExitCode);

        var nothing = await Run("keys", "set", "k");
        var missing = await Run("keys", "set", "nope", "--rate", "1/s");

        Assert.Equal(2, nothing.ExitCode);
        Assert.Contains("--rate, --tokens and --concurrent", nothing.Stderr, StringComparison.Ordinal);
        Assert.Equal(4, missing.ExitCode);
        Assert.Contains("No active client key is named 'nope'", missing.Stderr, StringComparison.Ordinal);
    }
}
