using System.Net;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// Someone who can write the database, but has no key file, changes a saved version of a credential (pointing it at
/// their server) and waits for the user to restore it. The restore must refuse that version, and nothing may be sent
/// to their server afterwards.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class HistoryTamperingTests(PostgresServer server)
{
    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Restore_SavedVersionPointedAtTheAttacker_RefusedAndTheSecretNeverArrivesThere(string backend)
    {
        const string first = "sk-DBWRITER-history-v1-5a0f";
        const string second = "sk-DBWRITER-history-v2-c8e2";
        await using var store = await WritableStore.CreateAsync(backend, server);
        await using var upstream = new SimulatedUpstream();
        await using var attacker = new SimulatedUpstream();
        await upstream.StartAsync();
        await attacker.StartAsync();
        await using var gateway = await store.StartGatewayAsync();
        await gateway.AddApiKeyAsync("api", upstream.Url, first, "--header", "x-api-key", "--format", "{secret}");
        await gateway.AddApiKeyAsync("api", upstream.Url, second, "--header", "x-api-key", "--format", "{secret}", "--replace");
        var key = await gateway.CreateKeyAsync("agent", "api");

        await store.TamperAsync($"UPDATE credential_history SET metadata_json = replace(metadata_json, '{upstream.Url}', '{attacker.Url}') WHERE version = 1");

        var restoreOne = await store.Cli(null, "restore", "api", "--version", "1");
        using var response = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/api/v1/messages", key));
        var restoreNewest = await store.Cli(null, "restore", "api");
        var history = await store.Cli(null, "history", "api");

        Assert.Empty(CredentialRowTamperingTests.Arrivals(attacker, first, second));
        Assert.NotEqual(0, restoreOne.ExitCode);
        Assert.Contains("changed outside Latchkey", restoreOne.Stderr, StringComparison.Ordinal);
        Assert.NotEqual(0, restoreNewest.ExitCode);
        Assert.Contains("changed outside Latchkey", history.Stdout, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(upstream.Requests);
        Assert.Equal(second, seen.Headers["x-api-key"]);
        Assert.Contains(attacker.Url, await store.QueryAsync("SELECT metadata_json FROM credential_history WHERE version = 1"), StringComparison.Ordinal);
    }
}
