using System.Diagnostics;
using System.Text.Json;
using Latchkey.Tests.Peers;
using Latchkey.Tokens;
using Xunit.Abstractions;

namespace Latchkey.Tests.Mcp;

/// <summary>
/// The stdio bridge against the real MCP server and the real oidc-provider issuing 2-second JWT access tokens
/// (what <c>bench/mcp-soak.sh</c> runs at scale): the stored expiry must never outlive the JWT's own <c>exp</c>,
/// which has whole-second granularity and can fall up to a second before <c>sent + expires_in</c>; a token that died
/// while it was being refreshed (a cold process, a stalled machine) is never sent; and the issue's soak, 3 servers ×
/// 6 bridges with 2-second tokens, connects every bridge and refreshes about once per expiry per server.
/// </summary>
public sealed class McpStdioBridgeExpiryTests(ITestOutputHelper output)
{
    private static readonly object[] Whoami = [new { name = "whoami" }];

    [Fact]
    public async Task StdioBridge_TwoSecondJwtTokens_StoredExpiryNeverOutlivesJwtExpAndEveryCallSucceeds()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 2 });
        await world.AddAsync("tracker", world.Mcp.Url);
        await world.AuthorizationServer.ResetCountersAsync();
        var slow = new { name = "count", args = new { steps = 1, delayMs = 1200 } };
        object[] calls = [new { name = "whoami" }, slow, new { name = "whoami" }, slow, new { name = "whoami" }, slow, new { name = "whoami" }];

        var run = await world.ClientAsync(calls, "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "tracker");

        Assert.True(run.GetProperty("ok").GetBoolean(), run.ToString());
        Assert.All(run.GetProperty("calls").EnumerateArray(), c => Assert.True(c.GetProperty("ok").GetBoolean(), run.ToString()));
        var counters = await world.AuthorizationServer.CountersAsync();
        Assert.True(counters.Refresh >= 2, $"expected the bridge to refresh the 2 s token at least twice, saw {counters.Refresh}");
        Assert.Equal(0, counters.RefreshError);
        var record = (await world.Latchkey.ReadAsync("tracker"))!;
        var jwtExp = TokenEngine.JwtExpiry(record.Secrets.AccessToken!);
        Assert.NotNull(jwtExp);
        Assert.True(record.Metadata.ExpiresAt <= jwtExp, $"stored expiry {record.Metadata.ExpiresAt:O} is after the token's exp {jwtExp:O}");
    }

    [Fact]
    public async Task StdioBridge_RefreshAnsweredAfterTheNewTokenExpired_RefreshesAgainAndNeverSendsTheDeadToken()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 3 });
        await world.AddAsync("tracker", world.Mcp.Url);
        await world.Latchkey.UntilExpiredAsync("tracker"); // the stored token has expired: the bridge must refresh first
        await world.AuthorizationServer.ResetCountersAsync();
        await world.Mcp.ResetCountersAsync();
        // The next refresh is issued at once (its 2-3 s of life start running) but answered 3.5 s later: dead on arrival,
        // as on a 2-core machine starting 18 bridges, where a cold process took longer to refresh than the token lives.
        await world.AuthorizationServer.SetFaultsAsync(new { slowRefreshAnswers = 1, slowAnswerMs = 3500 });

        var run = await world.ClientAsync(Whoami, "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "tracker");

        Assert.True(run.GetProperty("ok").GetBoolean(), run.ToString());
        Assert.True(run.GetProperty("calls")[0].GetProperty("ok").GetBoolean(), run.ToString());
        var counters = await world.AuthorizationServer.CountersAsync();
        Assert.Equal((2, 0), (counters.Refresh, counters.RefreshError)); // the dead token, then a live one
        var seen = await world.Mcp.CountersAsync();
        Assert.True(seen.GetProperty("unauthorized").GetInt32() == 0, $"the bridge sent a token that had expired before it was handed out: {seen.GetProperty("rejected")}");
        Assert.Contains((await world.Latchkey.StatusAsync("tracker")).GetProperty("state").GetString(), new[] { "ok", "expiring" });
    }

    [Fact]
    public async Task StdioBridge_EveryRefreshAnsweredAfterTheTokenExpired_SaysSoAfterThreeRefreshesAndSendsNoDeadToken()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 2 });
        await world.AddAsync("tracker", world.Mcp.Url);
        await world.Latchkey.UntilExpiredAsync("tracker");
        await world.AuthorizationServer.ResetCountersAsync();
        await world.Mcp.ResetCountersAsync();
        await world.AuthorizationServer.SetFaultsAsync(new { slowRefreshAnswers = 10, slowAnswerMs = 2500 });

        var run = await world.ClientAsync(Whoami, "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "tracker");

        Assert.False(run.GetProperty("ok").GetBoolean(), run.ToString());
        Assert.Contains("expired before it could be used", run.GetProperty("error").GetString(), StringComparison.Ordinal);
        var counters = await world.AuthorizationServer.CountersAsync();
        Assert.Equal((3, 0), (counters.Refresh, counters.RefreshError)); // bounded: TokenEngineOptions.MaxRefreshesPerCall
        Assert.Equal(0, (await world.Mcp.CountersAsync()).GetProperty("unauthorized").GetInt32());
        var status = await world.Latchkey.StatusAsync("tracker");
        Assert.Contains(status.GetProperty("state").GetString(), new[] { "ok", "expiring" }); // the grant is fine; the machine was too slow for it
        Assert.False(status.TryGetProperty("last_upstream_failure", out var failure) && failure.ValueKind == JsonValueKind.Object, status.ToString());
    }

    /// <summary>The issue's soak (bench/mcp-soak.sh runs it for 60 s): 3 MCP servers × 6 concurrent bridge processes, 2 s
    /// access tokens, each bridge calling <c>whoami</c> every 100 ms, all 18 starting at once.</summary>
    [Fact]
    public async Task StdioBridge_ThreeServersSixBridgesTwoSecondTokens_AllConnectNoInvalidGrantAboutOneRefreshPerExpiry()
    {
        const int Servers = 3, Bridges = 6, Seconds = 20;
        await using var world = await McpWorld.StartAsync(output, servers: Servers);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 2 });
        for (var i = 0; i < Servers; i++)
        {
            await world.AddAsync($"s{i}", world.Servers[i].Url);
        }

        await world.AuthorizationServer.ResetCountersAsync();
        var soak = new Dictionary<string, string> { ["MCP_SOAK_SECONDS"] = Seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var clock = Stopwatch.StartNew();
        var runs = await Task.WhenAll(Enumerable.Range(0, Servers * Bridges).Select(n =>
            world.ClientWithEnvironmentAsync(soak, Array.Empty<object>(), "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", $"s{n / Bridges}")));
        var elapsed = clock.Elapsed;

        Assert.All(runs, r => Assert.True(r.GetProperty("ok").GetBoolean() && r.TryGetProperty("soak", out _), $"a bridge failed to connect: {r}"));
        var calls = runs.Sum(r => r.GetProperty("soak").GetProperty("calls").GetInt32());
        var failed = runs.Sum(r => r.GetProperty("soak").GetProperty("failed").GetInt32());
        var counters = await world.AuthorizationServer.CountersAsync();
        output.WriteLine($"{Servers} x {Bridges}, {Seconds} s soak in {elapsed.TotalSeconds:0} s: {calls} calls, {failed} failed; refreshes per grant {string.Join(", ", counters.ByGrant.Values)}; refused {counters.RefreshError}");
        Assert.Equal(0, failed);
        Assert.Equal(0, counters.RefreshError);
        Assert.Empty(counters.Errors);
        Assert.Equal(Servers, counters.ByGrant.Count); // one grant per server, never a new sign-in
        // A 2 s token lives 1-2 s (its iat is rounded down to the second) and is refreshed at 75-85 % of that, so one
        // refresh per expiry is between Seconds / 2 and elapsed / 0.75 per grant; a refresh per bridge would be 6 times that.
        Assert.All(counters.ByGrant.Values, n => Assert.InRange(n, (Seconds / 2) - 1, (int)(elapsed.TotalSeconds / 0.75) + 2));
        for (var i = 0; i < Servers; i++)
        {
            Assert.Contains((await world.Latchkey.StatusAsync($"s{i}")).GetProperty("state").GetString(), new[] { "ok", "expiring" }); // 2 s tokens: never needs-auth
        }
    }
}
