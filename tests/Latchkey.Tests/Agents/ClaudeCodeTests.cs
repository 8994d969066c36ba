using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// The real Claude Code (npm <c>@anthropic-ai/claude-code</c>, pinned in <c>tests/peers</c>) run headless through
/// <c>latchkey run</c> against the simulated Anthropic Messages API, calling tools of the real OAuth-protected MCP
/// server through Latchkey: the gateway's <c>/mcp/NAME</c> proxy and the <c>latchkey mcp stdio</c> bridge.
/// </summary>
public sealed class ClaudeCodeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Run_McpToolsThroughProxyAndStdioBridge_FinalAnswerCarriesBothRealResults()
    {
        await using var world = await AgentWorld.StartAsync(output);
        await world.AddAnthropicAsync();
        using var claude = RealAgent.Claude();
        var config = await world.ClaudeMcpConfigAsync(claude);
        world.Upstream.Behaviour.Model = AgentWorld.Model(
            ("mcp__tracker-proxy__whoami", new JsonObject()),
            ("mcp__tracker-bridge__echo", new JsonObject { ["text"] = "bridged-hello" }));

        var run = await ClaudeAsync(world, claude, config);

        var result = run.LastJson();
        Assert.False(result.GetProperty("is_error").GetBoolean(), run.ToString());
        var answer = result.GetProperty("result").GetString()!;
        Assert.Contains("RESULTS: ", answer, StringComparison.Ordinal);
        Assert.Contains("\"sub\":\"test-user\"", answer, StringComparison.Ordinal); // whoami, through the proxy
        Assert.Contains("bridged-hello", answer, StringComparison.Ordinal); // echo, through the bridge
        var counters = await world.Mcp.Mcp.CountersAsync();
        Assert.Equal(1, counters.GetProperty("toolCalls").GetProperty("whoami").GetInt32());
        Assert.Equal(1, counters.GetProperty("toolCalls").GetProperty("echo").GetInt32());
        await world.AssertProviderSawOnlyTheStoredKeyAsync();
    }

    [Fact]
    public async Task Run_TwoSecondAccessTokensSeveralToolCalls_RefreshedWhileTheAgentWorksAndEveryCallSucceeds()
    {
        await using var world = await AgentWorld.StartAsync(output, accessTokenSeconds: 2);
        await world.AddAnthropicAsync();
        using var claude = RealAgent.Claude();
        var config = await world.ClaudeMcpConfigAsync(claude);
        await world.Mcp.AuthorizationServer.ResetCountersAsync();
        var slow = new JsonObject { ["steps"] = 1, ["delayMs"] = 1200 };
        world.Upstream.Behaviour.Model = AgentWorld.Model(
            ("mcp__tracker-proxy__count", slow),
            ("mcp__tracker-bridge__count", slow),
            ("mcp__tracker-proxy__whoami", new JsonObject()),
            ("mcp__tracker-bridge__count", slow),
            ("mcp__tracker-proxy__count", slow),
            ("mcp__tracker-bridge__whoami", new JsonObject()));

        var run = await ClaudeAsync(world, claude, config);

        var result = run.LastJson();
        Assert.False(result.GetProperty("is_error").GetBoolean(), run.ToString());
        var answer = result.GetProperty("result").GetString()!;
        Assert.Equal(4, answer.Split("counted to 1").Length - 1);
        Assert.Equal(2, answer.Split("\"sub\":\"test-user\"").Length - 1);
        var refreshes = await world.Mcp.AuthorizationServer.CountersAsync();
        Assert.True(refreshes.Refresh >= 2, $"expected refreshes while the agent worked, saw {refreshes.Refresh}");
        Assert.Equal(0, refreshes.RefreshError);
        await world.AssertProviderSawOnlyTheStoredKeyAsync();
    }

    private async Task<RealAgent.Run> ClaudeAsync(AgentWorld world, RealAgent claude, string config)
    {
        var run = await world.RunAsync(claude, "anthropic",
            "-p", "Use the tools.", "--output-format", "json", "--mcp-config", config, "--strict-mcp-config",
            "--allowedTools", "mcp__tracker-proxy", "mcp__tracker-bridge");
        output.WriteLine($"claude: {run}");
        return run;
    }
}
