using System.Text.Json;
using System.Text.Json.Nodes;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// One agent test's world: the real MCP server and authorization server with one MCP server signed in as
/// <c>tracker</c> (<see cref="McpWorld"/>), a <c>latchkey serve</c> over the same home, and a simulated LLM provider
/// that is strict like the real one: only the stored key (<see cref="Secret"/>) is accepted, anything else gets the
/// provider's own 401. The simulated model (<see cref="Model"/>) asks for the MCP tools a test lists, one per turn,
/// then answers with the tools' results, so the final answer carries what the real MCP server returned.
/// </summary>
internal sealed class AgentWorld : IAsyncDisposable
{
    private AgentWorld(McpWorld mcp, GatewayProcess gateway, SimulatedUpstream upstream, string secret)
    {
        Mcp = mcp;
        Gateway = gateway;
        Upstream = upstream;
        Secret = secret;
    }

    public McpWorld Mcp { get; }

    public GatewayProcess Gateway { get; }

    public SimulatedUpstream Upstream { get; }

    /// <summary>The provider key stored in Latchkey (the only one the simulated provider accepts).</summary>
    public string Secret { get; }

    public string Home => Mcp.Latchkey.Home;

    /// <summary>Starts everything; with <paramref name="accessTokenSeconds"/>, the MCP server's access tokens live that long.</summary>
    /// <param name="output">The test output.</param>
    /// <param name="secretPrefix"><c>sk-ant-api03-</c> for Anthropic, <c>sk-proj-</c> for OpenAI.</param>
    /// <param name="accessTokenSeconds">The lifetime of the MCP server's access tokens (default: the peer's).</param>
    public static async Task<AgentWorld> StartAsync(ITestOutputHelper output, string secretPrefix = "sk-ant-api03-", int? accessTokenSeconds = null)
    {
        var mcp = await McpWorld.StartAsync(output);
        try
        {
            if (accessTokenSeconds is { } ttl)
            {
                await mcp.AuthorizationServer.SetFaultsAsync(new { atTtl = ttl });
            }

            await mcp.AddAsync("tracker", mcp.Mcp.Url);
            var secret = secretPrefix + Guid.NewGuid().ToString("N");
            var upstream = new SimulatedUpstream(new SimBehaviour { Accept = k => k == secret });
            await upstream.StartAsync();
            var gateway = await GatewayProcess.StartAsync(mcp.Latchkey.TempHome);
            return new AgentWorld(mcp, gateway, upstream, secret);
        }
        catch
        {
            await mcp.DisposeAsync();
            throw;
        }
    }

    /// <summary>Stores the Anthropic credential <c>anthropic</c> (x-api-key, anthropic-version) for the simulated provider.</summary>
    public Task AddAnthropicAsync(string? secret = null) =>
        Gateway.AddApiKeyAsync("anthropic", Upstream.Url, secret ?? Secret, "--header", "x-api-key", "--format", "{secret}", "--extra-header", "anthropic-version: 2023-06-01");

    /// <summary>Stores the OpenAI credential <c>openai</c> (Authorization: Bearer) for the simulated provider's <c>/v1</c>.</summary>
    public Task AddOpenAiAsync(string? secret = null) => Gateway.AddApiKeyAsync("openai", Upstream.Url + "/v1", secret ?? Secret);

    /// <summary>
    /// The simulated model, for the Anthropic Messages API and the OpenAI Responses API alike: asks for each tool of
    /// <paramref name="tools"/> in turn (the tool whose name is the MCP tool's, or ends with <c>__NAME</c> as Claude Code
    /// names MCP tools, or <c>/NAME</c> for a function of a Responses namespace, named <c>NAMESPACE/NAME</c> as Codex
    /// offers an MCP server's tools in the namespace <c>mcp__SERVER</c>), one per answer, and when every one has a
    /// result, answers <c>RESULTS: </c> and the results joined by <c> | </c>. A tool the request does not offer is
    /// answered in text, naming the tools it does offer.
    /// </summary>
    public static Func<JsonObject, IReadOnlyList<JsonObject>> Model(params (string Name, JsonObject Input)[] tools) => request =>
    {
        var results = ToolResults(request);
        if (results.Count >= tools.Length)
        {
            return [new JsonObject { ["type"] = "text", ["text"] = "RESULTS: " + string.Join(" | ", results) }];
        }

        var (name, input) = tools[results.Count];
        var offered = OfferedTools(request);
        var tool = offered.FirstOrDefault(t => t == name || t.EndsWith("__" + name, StringComparison.Ordinal) || t.EndsWith("/" + name, StringComparison.Ordinal))
            ?? (offered.Contains(name[..(name.LastIndexOf('/') + 1)] + "*") && name.Contains('/', StringComparison.Ordinal) ? name : null);
        return tool is null
            ? [new JsonObject { ["type"] = "text", ["text"] = $"NO TOOL {name}; offered: {string.Join(", ", offered)}" }]
            : [new JsonObject { ["type"] = "text", ["text"] = $"Calling {name}." }, new JsonObject { ["type"] = "tool_use", ["name"] = tool, ["input"] = input.DeepClone() }];
    };

    /// <summary>
    /// The tools a request offers: Anthropic's and the Responses API's functions by name, each function of a Responses
    /// <c>namespace</c> tool as <c>NAMESPACE/NAME</c>, and each namespace Codex lists as deferred (in a developer
    /// message, <c>Deferred tool namespaces:</c> then <c>- NAMESPACE</c> lines) as <c>NAMESPACE/*</c>. Codex defers an
    /// MCP server's tools once there are more than a few, leaving the model to look them up with its tool search, but
    /// it runs a call to a deferred tool all the same; the simulated model calls it directly.
    /// </summary>
    private static List<string> OfferedTools(JsonObject request)
    {
        var offered = new List<string>();
        foreach (var text in (request["input"] as JsonArray ?? []).SelectMany(i => i?["content"] as JsonArray ?? []).Select(c => c?["text"]?.GetValue<string>()))
        {
            var at = text?.IndexOf("Deferred tool namespaces:\n", StringComparison.Ordinal) ?? -1;
            if (at < 0)
            {
                continue;
            }

            foreach (var line in text![at..].Split('\n').Skip(1).TakeWhile(l => l.StartsWith("- ", StringComparison.Ordinal)))
            {
                offered.Add(line[2..].Split(':')[0].Trim() + "/*");
            }
        }

        foreach (var tool in request["tools"] as JsonArray ?? [])
        {
            var name = tool?["name"]?.GetValue<string>() ?? string.Empty;
            if (tool?["type"]?.GetValue<string>() == "namespace")
            {
                offered.AddRange((tool["tools"] as JsonArray ?? []).Select(t => name + "/" + (t?["name"]?.GetValue<string>() ?? string.Empty)));
            }
            else
            {
                offered.Add(name);
            }
        }

        return offered;
    }

    /// <summary>The text of every tool result in a request, in order: Anthropic's <c>tool_result</c> blocks, or the
    /// Responses API's <c>function_call_output</c> input items (their output a string or <c>input_text</c> parts).</summary>
    private static List<string> ToolResults(JsonObject request)
    {
        var results = new List<string>();
        foreach (var item in request["input"] as JsonArray ?? [])
        {
            if (item is JsonObject { } output && output["type"]?.GetValue<string>() == "function_call_output")
            {
                results.Add(output["output"] switch
                {
                    JsonValue v => v.GetValue<string>(),
                    JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>() ?? string.Empty)),
                    _ => string.Empty,
                });
            }
        }

        foreach (var message in request["messages"] as JsonArray ?? [])
        {
            if (message?["content"] is not JsonArray content)
            {
                continue;
            }

            foreach (var block in content)
            {
                if (block?["type"]?.GetValue<string>() != "tool_result")
                {
                    continue;
                }

                results.Add(block["content"] switch
                {
                    JsonValue v => v.GetValue<string>(),
                    JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>() ?? string.Empty)),
                    _ => string.Empty,
                });
            }
        }

        return results;
    }

    /// <summary>Claude Code's <c>--mcp-config</c> file, with the MCP server through the gateway's proxy
    /// (<c>tracker-proxy</c>, with a client key for <c>tracker</c> only) and through the stdio bridge
    /// (<c>tracker-bridge</c>); returns the file's path. The key is only in the file, never on a command line.</summary>
    public async Task<string> ClaudeMcpConfigAsync(RealAgent agent)
    {
        var key = await Gateway.CreateKeyAsync("claude-mcp-" + Guid.NewGuid().ToString("N")[..6], "tracker");
        var config = new JsonObject
        {
            ["mcpServers"] = new JsonObject
            {
                ["tracker-proxy"] = new JsonObject
                {
                    ["type"] = "http",
                    ["url"] = $"{Gateway.Url}/mcp/tracker",
                    ["headers"] = new JsonObject { ["Authorization"] = $"Bearer {key}" },
                },
                ["tracker-bridge"] = new JsonObject
                {
                    ["type"] = "stdio",
                    ["command"] = Processes.LatchkeyExe,
                    ["args"] = new JsonArray("mcp", "stdio", "tracker"),
                    ["env"] = new JsonObject { ["LATCHKEY_HOME"] = Home },
                },
            },
        };
        return agent.WriteFile("mcp.json", config.ToJsonString());
    }

    /// <summary>The variable that holds the client key of Codex's <c>tracker_proxy</c> MCP server (<see cref="CodexMcpConfigAsync"/>).</summary>
    public const string CodexMcpKeyVariable = "TRACKER_LATCHKEY_KEY";

    /// <summary>
    /// Codex's own configuration (<c>config.toml</c> in its <c>CODEX_HOME</c>), with the MCP server through the
    /// gateway's proxy (<c>tracker_proxy</c>: streamable HTTP, its bearer token a client key for <c>tracker</c> only,
    /// read from <see cref="CodexMcpKeyVariable"/>, which is set in the agent's environment) and through the stdio
    /// bridge (<c>tracker_bridge</c>); both servers required at startup (a server that cannot start fails the run), their
    /// tools approved up front (a headless run asks no one). The key is
    /// only in the environment, never in the file or on a command line.
    /// </summary>
    public async Task CodexMcpConfigAsync(RealAgent agent)
    {
        var key = await Gateway.CreateKeyAsync("codex-mcp-" + Guid.NewGuid().ToString("N")[..6], "tracker");
        agent.Environment[CodexMcpKeyVariable] = key;
        var toml = $"""
            [mcp_servers.tracker_proxy]
            url = {Toml($"{Gateway.Url}/mcp/tracker")}
            bearer_token_env_var = "{CodexMcpKeyVariable}"
            default_tools_approval_mode = "approve"
            required = true

            [mcp_servers.tracker_bridge]
            command = {Toml(Processes.LatchkeyExe)}
            args = ["mcp", "stdio", "tracker"]
            env = {"{"} LATCHKEY_HOME = {Toml(Home)} {"}"}
            default_tools_approval_mode = "approve"
            required = true

            """;
        agent.WriteFile(Path.Combine("home", ".codex", "config.toml"), toml);
    }

    /// <summary>A TOML basic string (JSON's escapes are TOML's).</summary>
    private static string Toml(string value) => JsonSerializer.Serialize(value);

    /// <summary>Runs <c>latchkey run --credential NAME -- AGENT ARGS</c> in <paramref name="agent"/>'s environment, on this world's home.</summary>
    public Task<RealAgent.Run> RunAsync(RealAgent agent, string credential, params string[] agentArgs) =>
        RunWithOptionsAsync(agent, ["--credential", credential], agentArgs);

    /// <summary>Runs <c>latchkey run OPTIONS -- AGENT ARGS</c> in <paramref name="agent"/>'s environment, on this world's home.</summary>
    public Task<RealAgent.Run> RunWithOptionsAsync(RealAgent agent, string[] runOptions, params string[] agentArgs)
    {
        agent.Environment["LATCHKEY_HOME"] = Home;
        return agent.RunAsync(Processes.LatchkeyExe, ["run", .. runOptions, "--", agent.Executable, .. agentArgs]);
    }

    /// <summary>Every request the simulated provider received carried exactly the stored key, and no header held a
    /// client key (<c>lk_</c>) or the MCP server's access token.</summary>
    public async Task AssertProviderSawOnlyTheStoredKeyAsync()
    {
        var mcpToken = (await Mcp.Latchkey.ReadAsync("tracker"))!.Secrets.AccessToken!;
        Assert.NotEmpty(Upstream.Requests);
        Assert.All(Upstream.Requests, r =>
        {
            Assert.True(r.Credential == Secret, $"{r.Method} {r.PathAndQuery} carried another credential than the stored key");
            foreach (var (name, value) in r.Headers)
            {
                Assert.False(value.Contains("lk_", StringComparison.Ordinal), $"header {name} of {r.PathAndQuery} holds a client key");
                Assert.False(value.Contains(mcpToken, StringComparison.Ordinal), $"header {name} of {r.PathAndQuery} holds the MCP access token");
            }

            Assert.False(System.Text.Encoding.UTF8.GetString(r.Body).Contains(Secret, StringComparison.Ordinal), "the key was in a body");
        });
    }

    public async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
        await Mcp.DisposeAsync();
    }
}
