using System.Net;
using System.Text.Json;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// Someone who can write the database, but has no key file, changes a client key's row: widens it to every
/// credential, takes back its revocation, extends its expiry, or raises or removes its limits. The gateway must refuse
/// that key outright (401), and no credential may reach any upstream with it.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class ClientKeyTamperingTests(PostgresServer server)
{
    private const string Unrevoked = "sk-DBWRITER-unrevoke-4e1b";
    private const string Extended = "sk-DBWRITER-expiry-90c3";

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Gateway_KeyWidenedToEverything_RefusedAndTheOtherSecretNeverSent(string backend)
    {
        const string secretA = "sk-DBWRITER-widen-a-77aa";
        const string secretB = "sk-DBWRITER-widen-b-2d84";
        await using var store = await WritableStore.CreateAsync(backend, server);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await store.StartGatewayAsync();
        await gateway.AddApiKeyAsync("a", upstream.Url, secretA, "--header", "x-api-key", "--format", "{secret}");
        await gateway.AddApiKeyAsync("b", upstream.Url, secretB, "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("agent", "a");

        await store.TamperAsync("UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'agent'");

        using var toB = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/b/v1/messages", key));
        using var toA = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/a/v1/messages", key));
        var doctor = await store.Cli(null, "doctor", "--json");
        var list = await store.Cli(null, "keys", "list", "--json");

        Assert.Empty(CredentialRowTamperingTests.Arrivals(upstream, secretA, secretB));
        Assert.Equal(HttpStatusCode.Unauthorized, toB.StatusCode);
        Assert.Equal("client_key_tampered", CredentialRowTamperingTests.Reason(await toB.Content.ReadAsStringAsync()));
        Assert.Equal(HttpStatusCode.Unauthorized, toA.StatusCode);
        Assert.Equal(1, doctor.ExitCode);
        var finding = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("check").GetString() == "client key 'agent'");
        Assert.Equal("fail", finding.GetProperty("status").GetString());
        Assert.Contains("latchkey keys revoke agent", finding.GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.Contains("\"tampered\"", list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(secretB, gateway.Log, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Gateway_RevokedKeyUnrevokedInTheDatabase_StaysRefused(string backend)
    {
        await using var store = await WritableStore.CreateAsync(backend, server);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await store.StartGatewayAsync();
        await gateway.AddApiKeyAsync("a", upstream.Url, Unrevoked, "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("agent", "a");
        var revoked = await store.Cli(null, "keys", "revoke", "agent");
        Assert.True(revoked.ExitCode == 0, revoked.ToString());

        await store.TamperAsync("UPDATE client_key SET revoked_at = NULL WHERE name = 'agent'");

        using var response = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/a/v1/messages", key));

        Assert.Empty(CredentialRowTamperingTests.Arrivals(upstream, Unrevoked));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("client_key_tampered", CredentialRowTamperingTests.Reason(await response.Content.ReadAsStringAsync()));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Gateway_ExpiredKeysExpiryExtended_StaysRefused(string backend)
    {
        await using var store = await WritableStore.CreateAsync(backend, server);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        string key;
        await using (var latchkey = store.Open())
        {
            key = (await latchkey.CreateKeyAsync("agent", ["a"], DateTimeOffset.UtcNow.AddMinutes(-5), default))!.Value.Value;
        }

        await using var gateway = await store.StartGatewayAsync();
        await gateway.AddApiKeyAsync("a", upstream.Url, Extended, "--header", "x-api-key", "--format", "{secret}");

        await store.TamperAsync($"UPDATE client_key SET expires_at = {WritableStore.Millis(DateTimeOffset.UtcNow.AddYears(1))} WHERE name = 'agent'");

        using var response = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/a/v1/messages", key));

        Assert.Empty(CredentialRowTamperingTests.Arrivals(upstream, Extended));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("client_key_tampered", CredentialRowTamperingTests.Reason(await response.Content.ReadAsStringAsync()));
    }

    [Theory]
    [InlineData("sqlite", "UPDATE client_key SET rate_limit = 1000000 WHERE name = 'agent'")]
    [InlineData("postgresql", "UPDATE client_key SET rate_limit = 1000000 WHERE name = 'agent'")]
    [InlineData("sqlite", "UPDATE client_key SET rate_limit = NULL, rate_window_s = NULL, tokens_per_day = NULL, concurrent_limit = NULL WHERE name = 'agent'")]
    [InlineData("postgresql", "UPDATE client_key SET tokens_per_day = 999999999999, concurrent_limit = NULL WHERE name = 'agent'")]
    public async Task Gateway_KeysLimitRaisedOrRemoved_RefusedAndNothingSent(string backend, string sql)
    {
        const string secret = "sk-DBWRITER-limit-5e0f";
        await using var store = await WritableStore.CreateAsync(backend, server);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await store.StartGatewayAsync();
        await gateway.AddApiKeyAsync("a", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var created = await gateway.Cli(null, "keys", "create", "agent", "--credential", "a", "--rate", "2/hour", "--tokens", "1000/day", "--concurrent", "1");
        Assert.True(created.ExitCode == 0, created.ToString());
        var key = created.Stdout.Trim();

        await store.TamperAsync(sql);

        var statuses = new List<HttpStatusCode>();
        string? reason = null;
        for (var i = 0; i < 3; i++)
        {
            using var response = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/a/v1/messages", key));
            statuses.Add(response.StatusCode);
            reason ??= CredentialRowTamperingTests.Reason(await response.Content.ReadAsStringAsync());
        }

        var list = await store.Cli(null, "keys", "list", "--json");
        var set = await store.Cli(null, "keys", "set", "agent", "--rate", "none");

        Assert.Empty(CredentialRowTamperingTests.Arrivals(upstream, secret));
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.Unauthorized, s));
        Assert.Equal("client_key_tampered", reason);
        Assert.Contains("\"tampered\"", list.Stdout, StringComparison.Ordinal);
        Assert.NotEqual(0, set.ExitCode); // and Latchkey will not seal the changed row as genuine
        Assert.Contains("changed outside Latchkey", set.Stderr, StringComparison.Ordinal);
    }
}
