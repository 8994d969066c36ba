using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// The real Codex (npm <c>@openai/codex</c>, pinned in <c>tests/peers</c>) run headless (<c>codex exec</c>) through
/// <c>latchkey run</c> against the simulated OpenAI Responses API, calling tools of the real OAuth-protected MCP server
/// through Latchkey: the gateway's <c>/mcp/NAME</c> proxy (a streamable HTTP server in Codex's own
/// <c>config.toml</c>, its bearer token from an environment variable) and the <c>latchkey mcp stdio</c> bridge.
/// </summary>
/// <remarks>
/// The model is <c>gpt-5.5</c>, one Codex 0.171 knows that takes its tools as plain Responses API functions (an MCP
/// server's in a <c>namespace</c> <c>mcp__SERVER</c>); its newer default models reach MCP tools only through a
/// JavaScript tool that the simulated model does not write.
/// </remarks>
public sealed class CodexTests(ITestOutputHelper output)
{
    /// <summary>The model and the settings that make a headless <c>codex exec</c> answer at once: no retries.</summary>
    internal static readonly string[] ExecOptions =
    [
        "--skip-git-repo-check", "-m", "gpt-5.5",
        "-c", "model_providers.latchkey.request_max_retries=0", "-c", "model_providers.latchkey.stream_max_retries=0",
    ];

    [Fact]
    public async Task Run_McpToolsThroughProxyAndStdioBridge_FinalAnswerCarriesBothRealResults()
    {
        await using var world = await AgentWorld.StartAsync(output, "sk-proj-");
        await world.AddOpenAiAsync();
        using var codex = RealAgent.Codex();
        await world.CodexMcpConfigAsync(codex);
        world.Upstream.Behaviour.Model = AgentWorld.Model(
            ("mcp__tracker_proxy/whoami", new JsonObject()),
            ("mcp__tracker_bridge/echo", new JsonObject { ["text"] = "bridged-hello" }));

        var run = await world.RunAsync(codex, "openai", ["exec", .. ExecOptions, "Use the tools."]);
        output.WriteLine($"codex: {run}");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("RESULTS: ", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"sub\":\"test-user\"", run.Stdout, StringComparison.Ordinal); // whoami, through the proxy
        Assert.Contains("bridged-hello", run.Stdout, StringComparison.Ordinal); // echo, through the bridge
        var counters = await world.Mcp.Mcp.CountersAsync();
        Assert.Equal(1, counters.GetProperty("toolCalls").GetProperty("whoami").GetInt32());
        Assert.Equal(1, counters.GetProperty("toolCalls").GetProperty("echo").GetInt32());
        Assert.Equal(3, world.Upstream.Requests.Count(r => r.PathAndQuery == "/v1/responses"));
        Assert.All(world.Upstream.Requests, r => Assert.Equal("/v1/responses", r.PathAndQuery));
        await world.AssertProviderSawOnlyTheStoredKeyAsync();
        Assert.DoesNotContain(codex.Environment[AgentWorld.CodexMcpKeyVariable], run.Stdout + run.Stderr, StringComparison.Ordinal);
    }
}
