using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// An agent whose client key expires while it keeps calling. The gateway caches a key check for a second, so at the
/// moment of expiry it holds a "valid" answer for this key; the key must still stop working at once, not up to a
/// second later: the expiry is checked against the cached answer on every request.
/// </summary>
public sealed class ExpiredClientKeyTests
{
    [Fact]
    public async Task Request_KeyExpiresWhileAValidCheckIsCached_RefusedFromTheFirstRequestAfterExpiry()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("short", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var created = await gateway.Cli(null, "keys", "create", "brief", "--credential", "short", "--expires", "3s");
        Assert.True(created.ExitCode == 0, created.ToString());
        var key = created.Stdout.Trim();
        DateTimeOffset expiry;
        await using (var store = SqliteCredentialStore.Open(new StoreHome(gateway.HomePath), TimeProvider.System))
        {
            expiry = (await store.ListKeysAsync(default)).Single(k => k.Name == "brief").ExpiresAt!.Value;
        }

        // Calls without pause from now until well past the expiry: whichever check is cached when the key expires was
        // made less than a second before, so it says "valid" and is still fresh for the first calls after expiry.
        var calls = new List<(DateTimeOffset SentAt, HttpStatusCode Status, string Reason)>();
        var budget = Stopwatch.StartNew();
        while (DateTimeOffset.UtcNow < expiry + TimeSpan.FromSeconds(1.5))
        {
            Assert.True(budget.Elapsed < TimeSpan.FromSeconds(30), "the calls took too long");
            using var request = new HttpRequestMessage(HttpMethod.Get, "/c/short/v1/models");
            request.Headers.Add("x-api-key", key);
            var sentAt = DateTimeOffset.UtcNow;
            using var response = await gateway.Http.SendAsync(request);
            var reason = response.StatusCode == HttpStatusCode.OK ? string.Empty
                : JsonNode.Parse(await response.Content.ReadAsStringAsync())?["latchkey"]?["reason"]?.GetValue<string>() ?? "?";
            calls.Add((sentAt, response.StatusCode, reason));
        }

        var before = calls.Where(c => c.SentAt < expiry - TimeSpan.FromMilliseconds(50)).ToList();
        var after = calls.Where(c => c.SentAt >= expiry).ToList();
        Assert.Contains(before, c => c.SentAt > expiry - TimeSpan.FromSeconds(1)); // a check was cached within the last second
        Assert.All(before, c => Assert.Equal(HttpStatusCode.OK, c.Status));
        Assert.Contains(after, c => c.SentAt < expiry + TimeSpan.FromSeconds(0.5)); // calls made while that check was still cached
        Assert.All(after, c => Assert.True((c.Status, c.Reason) == (HttpStatusCode.Unauthorized, "client_key_expired"),
            $"a call {(c.SentAt - expiry).TotalMilliseconds:0} ms after expiry got {(int)c.Status} {c.Reason}"));
    }
}
