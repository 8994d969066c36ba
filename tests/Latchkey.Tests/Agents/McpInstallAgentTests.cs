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
        await using var world = await AgentWorld.StartAsync(output);
        using var codex = RealAgent.Codex();
        using var model = new ResponsesModelStub(("whoami", new JsonObject()));
        // The user's own config.toml: their model provider and a comment, which must come through every install.
        var config = Path.Combine(codex.Environment["CODEX_HOME"], "config.toml");
        var mine = $"# my Codex\nmodel = \"gpt-5\"\nmodel_provider = \"sim\"\n\n[model_providers.sim]\nname = \"sim\"\nbase_url = \"{model.BaseUrl}\"\nwire_api = \"responses\"\nenv_key = \"SIM_API_KEY\"\n";
        await File.WriteAllTextAsync(config, mine);
        codex.Environment["SIM_API_KEY"] = "sk-sim-accepts-anything";

        var install = await InstallAsync(world, codex, "--client", "codex");
        Assert.True(install.ExitCode == 0, install.ToString());
        Assert.StartsWith(mine, await File.ReadAllTextAsync(config), StringComparison.Ordinal);

        var viaGateway = await CodexAsync(codex);

        Assert.Contains("RESULTS: ", viaGateway.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"sub\":\"test-user\"", viaGateway.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await InstallAsync(world, codex, "--client", "codex", "--remove")).ExitCode);
        Assert.Equal(mine, await File.ReadAllTextAsync(config));
        Assert.Equal(0, (await InstallAsync(world, codex, "--client", "codex", "--via", "stdio")).ExitCode);

        var viaBridge = await CodexAsync(codex);

        Assert.Contains("\"sub\":\"test-user\"", viaBridge.Stdout, StringComparison.Ordinal);
        var counters = await world.Mcp.Mcp.CountersAsync();
        Assert.Equal(2, counters.GetProperty("toolCalls").GetProperty("whoami").GetInt32());
        Assert.All(model.Requests, r => Assert.DoesNotContain("lk_", r.ToJsonString(), StringComparison.Ordinal));
    }

    /// <summary>
    /// <c>codex exec</c>, headless. MCP tool calls need the user's approval, which a headless run cannot give: the
    /// override approves this server's tools for the run (it configures approval, not the server, which comes from
    /// the file <c>mcp install</c> wrote). Codex starts the first turn once its MCP servers are up or a short grace
    /// has passed; on a loaded 2-core machine a cold stdio bridge can miss that, so the grace is made long.
    /// </summary>
    private async Task<RealAgent.Run> CodexAsync(RealAgent codex)
    {
        var run = await codex.RunAsync(codex.Executable, ["exec", "--skip-git-repo-check", "-c", "mcp_servers.tracker.default_tools_approval_mode=\"approve\"", "-c", "mcp_optional_startup_grace_ms=30000", "Use the tools."]);
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
