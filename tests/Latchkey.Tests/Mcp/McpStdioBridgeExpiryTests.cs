using Latchkey.Tests.Peers;
using Latchkey.Tokens;
using Xunit.Abstractions;

namespace Latchkey.Tests.Mcp;

/// <summary>
/// The stdio bridge against the real MCP server and the real oidc-provider issuing 2-second JWT access tokens
/// (what <c>bench/mcp-soak.sh</c> runs at scale): the stored expiry must never outlive the JWT's own <c>exp</c>,
/// which has whole-second granularity and can fall up to a second before <c>sent + expires_in</c>.
/// </summary>
public sealed class McpStdioBridgeExpiryTests(ITestOutputHelper output)
{
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
}
