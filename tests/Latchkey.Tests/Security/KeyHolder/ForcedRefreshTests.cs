using System.Net;
using System.Text;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// An agent holding a client key (perhaps steered by a prompt injection) calls an endpoint that answers 401 to every
/// token, again and again. Each 401 used to force a refresh, so the agent could make Latchkey hammer the
/// authorization server and get the grant throttled or revoked. Now the token engine refreshes once, and the token
/// that refresh produced is not refreshed again while it is young; the agent is told why. Real gateway, real
/// authorization server (npm oidc-provider), requests counted at the server.
/// </summary>
public sealed class ForcedRefreshTests(ITestOutputHelper output)
{
    private static readonly object[] Whoami = [new { name = "whoami" }];

    private const string MessageBody = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Forward_UpstreamRefusesEveryToken_FiftyRequestsCauseOneRefreshAndTheDiagnosticSaysWhy()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await using var upstream = new SimulatedUpstream(new SimBehaviour { Accept = _ => false }); // 401 to every token
        await upstream.StartAsync();
        await lk.LoginAsync("claude", "--resource", lk.Peer.Resource, "--upstream", upstream.Url);
        await using var gateway = await GatewayProcess.StartAsync(lk.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "claude");
        await lk.Peer.ResetCountersAsync();

        var diagnostics = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/claude/v1/messages") { Content = new StringContent(MessageBody, Encoding.UTF8, "application/json") };
            request.Headers.Add("x-api-key", key);
            using var response = await gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            diagnostics.Add(response.Headers.GetValues("latchkey-diagnostic").Single());
        }

        var counters = await lk.Peer.CountersAsync();
        Assert.True(counters.TokenRequests == 1, $"50 refused requests caused {counters.TokenRequests} token requests ({counters.RefreshRequests} refreshes)");
        Assert.Equal(1, counters.Refresh);
        Assert.Equal(0, counters.RefreshError);
        Assert.Equal(0, counters.Revoked);
        Assert.DoesNotContain("did not refresh", diagnostics[0], StringComparison.Ordinal); // the first one did refresh, and resent
        Assert.All(diagnostics.Skip(1), d =>
        {
            Assert.StartsWith("authentication_failed;", d, StringComparison.Ordinal);
            Assert.Contains("did not refresh 'claude' again", d, StringComparison.Ordinal);
            Assert.Contains("throttled or revoked", d, StringComparison.Ordinal);
        });
        Assert.Equal("ok", (await lk.StatusAsync("claude")).GetProperty("state").GetString()); // the grant is intact
        Assert.Equal(50 + 1, upstream.Requests.Count); // 50 requests, and one resend after the one refresh
    }

    [Fact]
    public async Task McpProxyAndStdioBridges_ServerRefusesEveryToken_TenClientsInSixProcessesCauseOneRefresh()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "tracker");
        await world.AuthorizationServer.ResetCountersAsync();
        await world.Mcp.SetFaultsAsync(new { reject401 = 1_000_000 }); // every token check fails, whatever the token

        var runs = new List<System.Text.Json.JsonElement>();
        for (var i = 0; i < 5; i++)
        {
            runs.Add(await world.ClientAsync(Whoami, "http", $"{gateway.Url}/mcp/tracker", $"Bearer {key}"));
        }

        for (var i = 0; i < 5; i++)
        {
            runs.Add(await world.ClientAsync(Whoami, "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "tracker")); // a process each
        }

        var counters = await world.AuthorizationServer.CountersAsync();
        Assert.True(counters.TokenRequests == 1, $"10 clients refused at the MCP server caused {counters.TokenRequests} token requests");
        Assert.All(runs, r => Assert.False(r.GetProperty("ok").GetBoolean(), r.ToString()));
        Assert.Contains("did not refresh 'tracker' again", runs[4].ToString(), StringComparison.Ordinal); // through the proxy
        Assert.Contains("did not refresh 'tracker' again", runs[9].ToString(), StringComparison.Ordinal); // through a bridge
        Assert.Equal("ok", (await world.Latchkey.StatusAsync("tracker")).GetProperty("state").GetString());
    }
}
