using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// The real Claude Code on what <c>latchkey mcp install</c> wrote into its own configuration (<c>~/.claude.json</c>
/// in the agent's private home): no <c>--mcp-config</c> flag, the agent finds the server where a user's agent would,
/// and calls its tool through Latchkey, first through the gateway's <c>/mcp/NAME</c> with the key install made, then,
/// after <c>--remove</c>, through the stdio bridge.
/// </summary>
public sealed class McpInstallAgentTests(ITestOutputHelper output)
{
    [Fact]
    public async Task McpInstall_ClaudeCodeUserScope_RealClaudeCallsTheToolThroughTheGatewayThenThroughTheBridge()
    {
        await using var world = await AgentWorld.StartAsync(output);
        await world.AddAnthropicAsync();
        using var claude = RealAgent.Claude();

        var install = await InstallAsync(world, claude, "--client", "claude-code"); // no --gateway: the running one is found
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Contains($"{world.Gateway.Url}/mcp/tracker", install.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("lk_", install.Stdout + install.Stderr, StringComparison.Ordinal);
        world.Upstream.Behaviour.Model = AgentWorld.Model(("mcp__tracker__whoami", new JsonObject()));

        var viaGateway = await ClaudeAsync(world, claude);

        var answer = Answer(viaGateway);
        Assert.Contains("\"sub\":\"test-user\"", answer, StringComparison.Ordinal);

        Assert.Equal(0, (await InstallAsync(world, claude, "--client", "claude-code", "--remove")).ExitCode);
        var bridge = await InstallAsync(world, claude, "--client", "claude-code", "--via", "stdio");
        Assert.True(bridge.ExitCode == 0, bridge.ToString());
        world.Upstream.Behaviour.Model = AgentWorld.Model(("mcp__tracker__echo", new JsonObject { ["text"] = "installed-bridge" }));

        var viaBridge = await ClaudeAsync(world, claude);

        Assert.Contains("installed-bridge", Answer(viaBridge), StringComparison.Ordinal);
        var counters = await world.Mcp.Mcp.CountersAsync();
        Assert.Equal(1, counters.GetProperty("toolCalls").GetProperty("whoami").GetInt32());
        Assert.Equal(1, counters.GetProperty("toolCalls").GetProperty("echo").GetInt32());
        await world.AssertProviderSawOnlyTheStoredKeyAsync();
    }

    /// <summary><c>latchkey mcp install tracker ARGS</c> as the agent's user: its HOME, this world's Latchkey home.</summary>
    private async Task<RealAgent.Run> InstallAsync(AgentWorld world, RealAgent agent, params string[] args)
    {
        agent.Environment["LATCHKEY_HOME"] = world.Home;
        var run = await agent.RunAsync(Processes.LatchkeyExe, ["mcp", "install", "tracker", .. args]);
        output.WriteLine($"$ latchkey mcp install tracker {string.Join(' ', args)}: {run}");
        return run;
    }

    private async Task<RealAgent.Run> ClaudeAsync(AgentWorld world, RealAgent claude)
    {
        var run = await world.RunAsync(claude, "anthropic", "-p", "Use the tools.", "--output-format", "json", "--allowedTools", "mcp__tracker");
        output.WriteLine($"claude: {run}");
        return run;
    }

    private static string Answer(RealAgent.Run run)
    {
        var result = run.LastJson();
        Assert.False(result.GetProperty("is_error").GetBoolean(), run.ToString());
        var answer = result.GetProperty("result").GetString()!;
        Assert.Contains("RESULTS: ", answer, StringComparison.Ordinal);
        return answer;
    }
}
