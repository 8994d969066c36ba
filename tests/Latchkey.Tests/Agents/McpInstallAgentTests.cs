using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// The real Claude Code and Codex on what <c>latchkey mcp install</c> wrote into their own configuration
/// (<c>~/.claude.json</c>, <c>$CODEX_HOME/config.toml</c> in the agent's private home): no <c>--mcp-config</c> flag,
/// the agent finds the server where a user's agent would, and calls its tool through Latchkey, first through the
/// gateway's <c>/mcp/NAME</c> with the key install made, then, after <c>--remove</c>, through the stdio bridge.
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

    [Fact]
    public async Task McpInstall_Codex_RealCodexCallsTheToolThroughTheGatewayThenThroughTheBridgeAndTheUsersConfigStays()
    {
        await using var world = await AgentWorld.StartAsync(output, "sk-proj-");
        await world.AddOpenAiAsync();
        using var codex = RealAgent.Codex();
        // The user's own config.toml, with a comment and a profile, which must come through every install unchanged.
        var config = Path.Combine(codex.Environment["CODEX_HOME"], "config.toml");
        const string mine = "# my Codex\n[profiles.fast]\nmodel = \"gpt-5.5\" # quick\n";
        await File.WriteAllTextAsync(config, mine);
        world.Upstream.Behaviour.Model = AgentWorld.Model(("mcp__tracker/whoami", new JsonObject()));

        var install = await InstallAsync(world, codex, "--client", "codex"); // no --gateway: the running one is found
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.Contains($"{world.Gateway.Url}/mcp/tracker", install.Stdout, StringComparison.Ordinal);
        Assert.StartsWith(mine, await File.ReadAllTextAsync(config), StringComparison.Ordinal);

        var viaGateway = await CodexAsync(world, codex);

        Assert.Contains("RESULTS: ", viaGateway.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"sub\":\"test-user\"", viaGateway.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await InstallAsync(world, codex, "--client", "codex", "--remove")).ExitCode);
        Assert.Equal(mine, await File.ReadAllTextAsync(config));
        Assert.Equal(0, (await InstallAsync(world, codex, "--client", "codex", "--via", "stdio")).ExitCode);

        var viaBridge = await CodexAsync(world, codex);

        Assert.Contains("\"sub\":\"test-user\"", viaBridge.Stdout, StringComparison.Ordinal);
        var counters = await world.Mcp.Mcp.CountersAsync();
        Assert.Equal(2, counters.GetProperty("toolCalls").GetProperty("whoami").GetInt32());
        await world.AssertProviderSawOnlyTheStoredKeyAsync();
    }

    /// <summary>
    /// <c>latchkey run --credential openai -- codex exec</c>, headless. The two overrides configure the run, not the
    /// server (which comes from the file <c>mcp install</c> wrote): a headless run cannot approve a tool call, so this
    /// server's tools are approved for it; and the run waits for the server to start rather than beginning the first
    /// turn without it (on a loaded 2-core machine a cold stdio bridge can miss Codex's short start-up grace).
    /// </summary>
    private async Task<RealAgent.Run> CodexAsync(AgentWorld world, RealAgent codex)
    {
        var run = await world.RunAsync(codex, "openai",
            ["exec", .. CodexTests.ExecOptions, "-c", "mcp_servers.tracker.default_tools_approval_mode=\"approve\"", "-c", "mcp_servers.tracker.required=true", "Use the tools."]);
        output.WriteLine($"codex: {run}");
        Assert.True(run.ExitCode == 0, run.ToString());
        return run;
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
