using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace Latchkey.Tests.Peers;

/// <summary>
/// The real OAuth-protected MCP server (npm <c>@modelcontextprotocol/sdk</c>, <c>tests/peers/mcp/server.mjs</c>) as an
/// OS process (<see cref="NodePeer"/>), plus the real authorization server it trusts: the MCP server starts first (on
/// a free port), the authorization server is started with the MCP server's two resources (<see cref="Url"/>,
/// <see cref="SseUrl"/>) accepted, then the MCP server is told the issuer. Both are stopped with their process trees
/// on dispose.
/// </summary>
internal sealed class McpServerPeer : IAsyncDisposable
{
    private readonly NodePeer _node;
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };

    private McpServerPeer(NodePeer node)
    {
        _node = node;
        Base = node.Ready.GetProperty("base").GetString()!;
        Url = node.Ready.GetProperty("mcp").GetString()!;
        SseUrl = node.Ready.GetProperty("sse").GetString()!;
    }

    /// <summary>The server's origin, where the test endpoints live.</summary>
    public string Base { get; }

    /// <summary>The Streamable HTTP endpoint, which is also its resource identifier.</summary>
    public string Url { get; }

    /// <summary>The legacy HTTP+SSE endpoint (its own resource identifier).</summary>
    public string SseUrl { get; }

    public string Stderr => _node.Stderr;

    /// <summary>Starts the MCP server alone; <see cref="TrustAsync"/> then points it at an authorization server.</summary>
    public static async Task<McpServerPeer> StartAsync(ITestOutputHelper? output, IReadOnlyDictionary<string, string>? environment = null) =>
        new(await NodePeer.StartAsync("mcp/server.mjs", "mcp-server", output, environment));

    /// <summary>The authorization server's environment that accepts this server's resources (merged with <paramref name="extra"/>).</summary>
    public Dictionary<string, string> AuthorizationServerEnvironment(IReadOnlyDictionary<string, string>? extra = null)
    {
        var env = new Dictionary<string, string>(extra ?? new Dictionary<string, string>()) { ["RESOURCES"] = $"{Url},{SseUrl}" };
        return env;
    }

    /// <summary>Makes the server accept tokens from <paramref name="issuer"/> (and serve it in its resource metadata).</summary>
    public async Task TrustAsync(string issuer)
    {
        using var response = await _http.PostAsJsonAsync(new Uri($"{Base}/__test/config"), new { issuer });
        response.EnsureSuccessStatusCode();
    }

    /// <summary>What the server saw: <c>requests</c> [{method, path, status, session, protocolVersion, bearer, rpc}],
    /// <c>unauthorized</c>, <c>forbidden</c>, <c>toolCalls</c> {name: n}, <c>sessionsDeleted</c>, <c>tokens</c> (distinct jti).</summary>
    public async Task<JsonElement> CountersAsync()
    {
        using var json = JsonDocument.Parse(await _http.GetStringAsync(new Uri($"{Base}/__test/counters")));
        return json.RootElement.Clone();
    }

    /// <summary>Merges faults: <c>reject401</c> (the next n token checks answer 401 whatever the token).</summary>
    public async Task SetFaultsAsync(object faults)
    {
        using var response = await _http.PostAsJsonAsync(new Uri($"{Base}/__test/faults"), faults);
        response.EnsureSuccessStatusCode();
    }

    public async Task ResetCountersAsync()
    {
        using var response = await _http.PostAsync(new Uri($"{Base}/__test/counters/reset"), null);
        response.EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _node.DisposeAsync();
    }
}

/// <summary>
/// One MCP test's world: the real MCP server, the real authorization server it trusts, a private Latchkey home
/// (with the test browser as <c>LATCHKEY_BROWSER</c>), and helpers to run the SDK's own MCP client against it.
/// </summary>
internal sealed class McpWorld : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;

    private McpWorld(IReadOnlyList<McpServerPeer> servers, LatchkeyAgainstPeer latchkey, ITestOutputHelper output)
    {
        Servers = servers;
        Latchkey = latchkey;
        _output = output;
    }

    /// <summary>The (first) MCP server.</summary>
    public McpServerPeer Mcp => Servers[0];

    /// <summary>Every MCP server of this world; all trust the one authorization server.</summary>
    public IReadOnlyList<McpServerPeer> Servers { get; }

    public LatchkeyAgainstPeer Latchkey { get; }

    public OidcProviderPeer AuthorizationServer => Latchkey.Peer;

    public static async Task<McpWorld> StartAsync(ITestOutputHelper output, IReadOnlyDictionary<string, string>? authorizationServer = null, IReadOnlyDictionary<string, string>? mcpServer = null, int servers = 1)
    {
        var started = new List<McpServerPeer>();
        try
        {
            for (var i = 0; i < servers; i++)
            {
                started.Add(await McpServerPeer.StartAsync(output, mcpServer));
            }

            var environment = started[0].AuthorizationServerEnvironment(authorizationServer);
            environment["RESOURCES"] = string.Join(',', started.SelectMany(m => new[] { m.Url, m.SseUrl }));
            var latchkey = await LatchkeyAgainstPeer.StartAsync(output, environment);
            foreach (var mcp in started)
            {
                await mcp.TrustAsync(latchkey.Peer.Issuer);
            }

            return new McpWorld(started, latchkey, output);
        }
        catch
        {
            foreach (var mcp in started)
            {
                await mcp.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary><c>latchkey mcp add NAME URL ARGS</c>, failing the test (with the browser's log) unless it worked.</summary>
    public async Task AddAsync(string name, string url, params string[] args)
    {
        var result = await Latchkey.RunAsync(["mcp", "add", name, url, .. args]);
        Assert.True(result.ExitCode == 0, $"mcp add {name} failed: {result}\nbrowser: {Latchkey.ReadBrowserLog()}\nas: {AuthorizationServer.Stderr}\nmcp: {Mcp.Stderr}");
    }

    /// <summary>Runs the SDK's client (tests/peers/mcp/client.mjs) and returns its one JSON line.</summary>
    public Task<JsonElement> ClientAsync(object calls, string mode, string target, string? authorization = null, params string[] extra) =>
        ClientWithEnvironmentAsync(new Dictionary<string, string>(), calls, mode, target, authorization, extra);

    /// <summary>As <see cref="ClientAsync"/>, with more environment (e.g. <c>MCP_SOAK_SECONDS</c>).</summary>
    public async Task<JsonElement> ClientWithEnvironmentAsync(IReadOnlyDictionary<string, string> environment, object calls, string mode, string target, string? authorization = null, params string[] extra)
    {
        var info = NodePeer.StartInfo("mcp/client.mjs");
        info.ArgumentList.Add(mode);
        info.ArgumentList.Add(target);
        foreach (var a in extra)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["MCP_CALLS"] = JsonSerializer.Serialize(calls);
        info.Environment["LATCHKEY_HOME"] = Latchkey.Home;
        info.Environment.Remove("XDG_DATA_HOME");
        if (authorization is not null)
        {
            info.Environment["MCP_AUTH"] = authorization;
        }

        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        var text = (await stdout).Trim();
        var err = await stderr;
        _output.WriteLine($"$ client.mjs {mode} -> {text}\n{err.TrimEnd()}");
        var last = text.Split('\n').LastOrDefault(l => l.StartsWith('{')) ?? throw new InvalidOperationException($"the MCP client printed no result: {text}\n{err}");
        using var json = JsonDocument.Parse(last);
        return json.RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        await Latchkey.DisposeAsync();
        foreach (var mcp in Servers)
        {
            await mcp.DisposeAsync();
        }
    }
}
