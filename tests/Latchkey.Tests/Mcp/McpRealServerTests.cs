using System.Diagnostics;
using System.Text.Json;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Peers;
using Xunit.Abstractions;

namespace Latchkey.Tests.Mcp;

/// <summary>
/// <c>latchkey mcp add|list|remove|config|stdio</c> and the gateway's <c>/mcp/NAME</c> proxy against a real MCP
/// server (npm @modelcontextprotocol/sdk, JWT access tokens checked for issuer, audience and <c>at+jwt</c>) and the
/// real authorization server (oidc-provider), driven by the SDK's own MCP client.
/// </summary>
public sealed class McpRealServerTests(ITestOutputHelper output)
{
    private static readonly object[] Whoami = [new { name = "whoami" }];

    [Fact]
    public async Task McpAdd_RealServer_DiscoversFromChallengeAndStoresOneRecordBoundToIssuerAndResource()
    {
        await using var world = await McpWorld.StartAsync(output);

        await world.AddAsync("tracker", world.Mcp.Url);
        await world.AddAsync("legacy", world.Mcp.SseUrl);
        var list = await world.Latchkey.RunAsync("mcp", "list", "--json");
        var status = await world.Latchkey.StatusAsync("tracker");

        var record = (await world.Latchkey.ReadAsync("tracker"))!;
        Assert.Equal(world.AuthorizationServer.Issuer, record.Metadata.Issuer);
        Assert.Equal(world.Mcp.Url, record.Metadata.Resource);
        Assert.Equal(world.Mcp.Url, record.Metadata.Upstream);
        Assert.Equal("streamable-http", record.Metadata.McpTransport);
        Assert.Equal("dcr", record.Metadata.Client!.Source);
        Assert.Contains("mcp:tools", record.Metadata.ScopesGranted);
        Assert.NotNull(record.Secrets.RefreshToken);
        var legacy = (await world.Latchkey.ReadAsync("legacy"))!;
        Assert.Equal(("sse", world.Mcp.SseUrl), (legacy.Metadata.McpTransport, legacy.Metadata.Resource));
        Assert.NotEqual(record.RefreshTokenFingerprint, legacy.RefreshTokenFingerprint); // each server its own grant
        using var servers = JsonDocument.Parse(list.Stdout);
        Assert.Equal(["legacy", "tracker"], servers.RootElement.EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());
        Assert.Equal("ok", status.GetProperty("state").GetString());
        Assert.Equal("streamable-http", status.GetProperty("mcp").GetProperty("transport").GetString());
        Assert.Equal("/mcp/tracker", status.GetProperty("mcp").GetProperty("proxy").GetString());
        // The server saw exactly one unauthenticated probe per add (the 401 the discovery started from).
        var counters = await world.Mcp.CountersAsync();
        Assert.Equal(2, counters.GetProperty("unauthorized").GetInt32());
    }

    [Fact]
    public async Task McpAdd_NoResourceMetadata_FailsNamingTheUrlThatFailedAndStoresNothing()
    {
        await using var world = await McpWorld.StartAsync(output);

        var result = await world.Latchkey.RunAsync("mcp", "add", "nothing", world.Mcp.Base + "/nothing");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("/.well-known/oauth-protected-resource", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("discovery_failed", result.Stderr, StringComparison.Ordinal);
        Assert.Null(await world.Latchkey.ReadAsync("nothing"));
    }

    [Fact]
    public async Task Proxy_SdkClientThroughConfigSnippet_RefusedWithoutKeyThenListsCallsStreamsProgressAndPassesSessionHeaders()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var (url, authorization) = await ConfigHttpAsync(world, "tracker", gateway.Url);
        await world.Mcp.ResetCountersAsync();
        var keyless = await world.ClientAsync(Whoami, "http", url);
        Assert.False(keyless.GetProperty("ok").GetBoolean(), keyless.ToString());
        Assert.Empty((await world.Mcp.CountersAsync()).GetProperty("requests").EnumerateArray()); // refused at the gateway

        var run = await world.ClientAsync(
            new object[] { new { name = "whoami" }, new { name = "count", args = new { steps = 4, delayMs = 300 }, progress = true } },
            "http", url, authorization);

        Assert.True(run.GetProperty("ok").GetBoolean(), run.ToString());
        Assert.Contains("whoami", run.GetProperty("tools").EnumerateArray().Select(t => t.GetString()));
        var calls = run.GetProperty("calls");
        Assert.Contains("\"sub\":\"test-user\"", calls[0].GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.Equal("counted to 4", calls[1].GetProperty("text").GetString());
        AssertStreamed(calls[1], 4);
        var seen = (await world.Mcp.CountersAsync()).GetProperty("requests").EnumerateArray().ToList();
        Assert.All(seen, r => Assert.True(r.GetProperty("bearer").GetBoolean()));
        Assert.All(seen, r => Assert.Equal(200 / 100, r.GetProperty("status").GetInt32() / 100));
        var session = seen.Select(r => r.GetProperty("session").GetString()).First(s => s is not null);
        Assert.Equal(run.GetProperty("session").GetString(), session);
        var afterInit = seen.Where(r => r.GetProperty("rpc").GetString() != "initialize").ToList();
        Assert.All(afterInit, r => Assert.Equal(session, r.GetProperty("session").GetString()));
        Assert.All(afterInit, r => Assert.False(string.IsNullOrEmpty(r.GetProperty("protocolVersion").GetString())));
        Assert.Contains(seen, r => r.GetProperty("method").GetString() == "DELETE");
        Assert.Equal(1, (await world.Mcp.CountersAsync()).GetProperty("sessionsDeleted").GetInt32());
        Assert.DoesNotContain(authorization["Bearer ".Length..], gateway.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_ServerAnswers401_OneRefreshOneRetryThenSuccess()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "tracker");
        var before = (await world.Latchkey.ReadAsync("tracker"))!.AccessTokenFingerprint;
        await world.AuthorizationServer.ResetCountersAsync();
        await world.Mcp.ResetCountersAsync();
        await world.Mcp.SetFaultsAsync(new { reject401 = 1 }); // the first token check of the session fails

        var run = await world.ClientAsync(Whoami, "http", $"{gateway.Url}/mcp/tracker", $"Bearer {key}");

        Assert.True(run.GetProperty("ok").GetBoolean(), run.ToString());
        Assert.True(run.GetProperty("calls")[0].GetProperty("ok").GetBoolean(), run.ToString());
        Assert.True(1 == (await world.AuthorizationServer.CountersAsync()).Refresh, gateway.Log + "\n" + (await world.Mcp.CountersAsync()));
        Assert.NotEqual(before, (await world.Latchkey.ReadAsync("tracker"))!.AccessTokenFingerprint);
        Assert.Equal(1, (await world.Mcp.CountersAsync()).GetProperty("unauthorized").GetInt32());
    }

    [Fact]
    public async Task Proxy_TokenDue_RefreshedAheadOfExpiryWithoutA401()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 2 });
        await world.AddAsync("tracker", world.Mcp.Url);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 300 });
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "tracker");
        await world.Latchkey.UntilExpiredAsync("tracker");
        await world.AuthorizationServer.ResetCountersAsync();
        await world.Mcp.ResetCountersAsync();

        var run = await world.ClientAsync(Whoami, "http", $"{gateway.Url}/mcp/tracker", $"Bearer {key}");

        Assert.True(run.GetProperty("calls")[0].GetProperty("ok").GetBoolean(), run.ToString());
        Assert.Equal(1, (await world.AuthorizationServer.CountersAsync()).Refresh);
        Assert.Equal(0, (await world.Mcp.CountersAsync()).GetProperty("unauthorized").GetInt32());
    }

    [Fact]
    public async Task Proxy_StepUp_ErrorNamesMissingScopeAndLoginWithTheUnionMakesTheToolWork()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "tracker");
        object[] admin = [new { name = "admin_op" }];

        var refused = await world.ClientAsync(admin, "http", $"{gateway.Url}/mcp/tracker", $"Bearer {key}");
        var status = await world.Latchkey.StatusAsync("tracker");

        var error = refused.GetProperty("calls")[0];
        Assert.False(error.GetProperty("ok").GetBoolean(), refused.ToString());
        Assert.Contains("mcp:admin", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("latchkey login tracker", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(("needs-scope", "insufficient_scope"), (status.GetProperty("mcp").GetProperty("state").GetString(), status.GetProperty("mcp").GetProperty("reason").GetProperty("code").GetString()));
        Assert.Contains("mcp:admin", status.GetProperty("mcp").GetProperty("reason").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(["mcp:admin"], status.GetProperty("mcp").GetProperty("scopes_missing").EnumerateArray().Select(s => s.GetString()!).ToArray());
        var requested = status.GetProperty("scopes").GetProperty("requested").EnumerateArray().Select(s => s.GetString()).ToList();
        Assert.Contains("mcp:tools", requested);
        Assert.Contains("mcp:admin", requested);
        Assert.Equal(1, (await world.Mcp.CountersAsync()).GetProperty("forbidden").GetInt32()); // not retried

        await world.Latchkey.LoginAsync("tracker");
        var granted = (await world.Latchkey.ReadAsync("tracker"))!.Metadata.ScopesGranted;
        var allowed = await world.ClientAsync(admin, "http", $"{gateway.Url}/mcp/tracker", $"Bearer {key}");

        Assert.Contains("mcp:admin", granted);
        Assert.Contains("mcp:tools", granted);
        Assert.Equal("admin ok", allowed.GetProperty("calls")[0].GetProperty("text").GetString());
        var after = (await world.Latchkey.StatusAsync("tracker")).GetProperty("mcp");
        Assert.Empty(after.GetProperty("scopes_missing").EnumerateArray());
        Assert.Equal("ok", after.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Proxy_WrongAudience_RefusedAfterOneRefreshAndStatusSaysWrongAudience()
    {
        await using var world = await McpWorld.StartAsync(output, new Dictionary<string, string> { ["WRONG_AUDIENCE"] = "1" });
        await world.AddAsync("tracker", world.Mcp.Url);
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "tracker");
        await world.AuthorizationServer.ResetCountersAsync();

        var run = await world.ClientAsync(Whoami, "http", $"{gateway.Url}/mcp/tracker", $"Bearer {key}");
        var status = await world.Latchkey.StatusAsync("tracker");

        Assert.False(run.GetProperty("ok").GetBoolean(), run.ToString());
        Assert.Contains("another audience", run.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("wrong_audience", status.GetProperty("last_upstream_failure").GetProperty("code").GetString());
        Assert.Equal(1, (await world.AuthorizationServer.CountersAsync()).Refresh);
    }

    [Fact]
    public async Task LegacySse_ProxyRewritesEndpointAndBridgeFollowsIt_ToolsWork()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("legacy", world.Mcp.SseUrl);
        await using var gateway = await GatewayProcess.StartAsync(world.Latchkey.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "legacy");
        object[] calls = [new { name = "echo", args = new { text = "hello" } }, new { name = "count", args = new { steps = 3, delayMs = 300 }, progress = true }];

        var proxied = await world.ClientAsync(calls, "sse", $"{gateway.Url}/mcp/legacy", $"Bearer {key}");
        var bridged = await world.ClientAsync(calls, "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "legacy");

        foreach (var run in new[] { proxied, bridged })
        {
            Assert.True(run.GetProperty("ok").GetBoolean(), run.ToString());
            Assert.Equal("hello", run.GetProperty("calls")[0].GetProperty("text").GetString());
            Assert.Equal("counted to 3", run.GetProperty("calls")[1].GetProperty("text").GetString());
            AssertStreamed(run.GetProperty("calls")[1], 3);
        }

        var paths = (await world.Mcp.CountersAsync()).GetProperty("requests").EnumerateArray().Select(r => $"{r.GetProperty("method").GetString()} {r.GetProperty("path").GetString()}").ToList();
        Assert.Contains("GET /sse", paths);
        Assert.Contains("POST /messages", paths);
    }

    [Fact]
    public async Task StdioBridge_SdkClient_InitializeListCallStepUpAndProgress()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);

        var run = await world.ClientAsync(
            new object[] { new { name = "whoami" }, new { name = "count", args = new { steps = 4, delayMs = 300 }, progress = true }, new { name = "admin_op" } },
            "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "tracker");

        Assert.True(run.GetProperty("ok").GetBoolean(), run.ToString());
        var calls = run.GetProperty("calls");
        Assert.Contains("\"sub\":\"test-user\"", calls[0].GetProperty("text").GetString(), StringComparison.Ordinal);
        AssertStreamed(calls[1], 4);
        Assert.Contains("mcp:admin", calls[2].GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("latchkey login tracker", calls[2].GetProperty("error").GetString(), StringComparison.Ordinal);
        var counters = await world.Mcp.CountersAsync();
        Assert.Equal(1, counters.GetProperty("sessionsDeleted").GetInt32());
        Assert.Contains("mcp:admin", (await world.Latchkey.ReadAsync("tracker"))!.Metadata.ScopesRequested);
    }

    [Fact]
    public async Task StdioBridge_SixProcessesWithAnExpiredToken_ShareOneRefresh()
    {
        const int Bridges = 6;
        await using var world = await McpWorld.StartAsync(output);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 2 });
        await world.AddAsync("tracker", world.Mcp.Url);
        await world.AuthorizationServer.SetFaultsAsync(new { atTtl = 300 });
        await world.Latchkey.UntilExpiredAsync("tracker");
        await world.AuthorizationServer.ResetCountersAsync();

        var runs = await Task.WhenAll(Enumerable.Range(0, Bridges).Select(_ => world.ClientAsync(Whoami, "stdio", Processes.LatchkeyExe, null, "mcp", "stdio", "tracker")));

        Assert.All(runs, r => Assert.True(r.GetProperty("calls")[0].GetProperty("ok").GetBoolean(), r.ToString()));
        var counters = await world.AuthorizationServer.CountersAsync();
        Assert.Equal(1, counters.Refresh);
        Assert.Equal(0, counters.RefreshError);
        Assert.Equal("ok", (await world.Latchkey.StatusAsync("tracker")).GetProperty("state").GetString());
    }

    [Fact]
    public async Task McpRemove_RevokesTheGrantAndRemovesOnlyThatServer()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);
        await world.AddAsync("legacy", world.Mcp.SseUrl);
        var refresh = (await world.Latchkey.ReadAsync("tracker"))!.Secrets.RefreshToken!;

        var removed = await world.Latchkey.RunAsync("mcp", "remove", "tracker");

        Assert.Equal(0, removed.ExitCode);
        Assert.Contains("revoked", removed.Stdout, StringComparison.Ordinal);
        Assert.Null(await world.Latchkey.ReadAsync("tracker"));
        Assert.NotNull(await world.Latchkey.ReadAsync("legacy"));
        Assert.False((await world.AuthorizationServer.IntrospectAsync(refresh)).GetProperty("active").GetBoolean());
        Assert.Equal(4, (await world.Latchkey.RunAsync("mcp", "remove", "tracker")).ExitCode);
    }

    [Fact]
    public async Task McpConfig_EveryClient_SnippetShapesAndTheirKeysAllowOnlyThatServer()
    {
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url);

        foreach (var (client, top, type) in new[] { ("claude-code", "mcpServers", "http"), ("cursor", "mcpServers", null), ("vscode", "servers", "http") })
        {
            var result = await world.Latchkey.RunAsync("mcp", "config", "tracker", "--client", client, "--gateway", "http://127.0.0.1:7999");

            Assert.Equal(0, result.ExitCode);
            using var json = JsonDocument.Parse(result.Stdout);
            var server = json.RootElement.GetProperty(top).GetProperty("tracker");
            Assert.Equal("http://127.0.0.1:7999/mcp/tracker", server.GetProperty("url").GetString());
            Assert.Equal(type, server.TryGetProperty("type", out var t) ? t.GetString() : null);
            Assert.StartsWith("Bearer lk_", server.GetProperty("headers").GetProperty("Authorization").GetString(), StringComparison.Ordinal);
        }

        var keys = await world.Latchkey.RunAsync("keys", "list", "--json");
        using var list = JsonDocument.Parse(keys.Stdout);
        Assert.Equal(3, list.RootElement.GetArrayLength());
        Assert.All(list.RootElement.EnumerateArray(), k => Assert.Equal(["tracker"], k.GetProperty("credentials").EnumerateArray().Select(c => c.GetString()!).ToArray()));
        Assert.Equal(["claude-code", "cursor", "vscode"], list.RootElement.EnumerateArray().Select(k => k.GetProperty("made_for").GetString()!).Order(StringComparer.Ordinal));

        foreach (var (client, top) in new[] { ("claude-desktop", "mcpServers"), ("vscode", "servers") })
        {
            var result = await world.Latchkey.RunAsync("mcp", "config", "tracker", "--client", client, "--via", "stdio");

            Assert.Equal(0, result.ExitCode);
            using var json = JsonDocument.Parse(result.Stdout);
            var server = json.RootElement.GetProperty(top).GetProperty("tracker");
            Assert.EndsWith("latchkey", server.GetProperty("command").GetString(), StringComparison.Ordinal);
            Assert.Equal(["mcp", "stdio", "tracker"], server.GetProperty("args").EnumerateArray().Select(a => a.GetString()!).ToArray());
            Assert.DoesNotContain("lk_", result.Stdout, StringComparison.Ordinal);
        }

        var unknown = await world.Latchkey.RunAsync("mcp", "config", "tracker", "--client", "emacs");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("claude-code, claude-desktop, cursor, vscode or codex", unknown.Stderr, StringComparison.Ordinal);

        var codex = await world.Latchkey.RunAsync("mcp", "config", "tracker", "--client", "codex", "--gateway", "http://127.0.0.1:7999");
        Assert.Equal(0, codex.ExitCode);
        var table = Latchkey.Mcp.TomlConfigDocument.Parse("snippet", codex.Stdout).Entry("tracker")!;
        Assert.Equal("http://127.0.0.1:7999/mcp/tracker", table["url"]!.GetValue<string>());
        Assert.StartsWith("Bearer lk_", table["http_headers"]!["Authorization"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    /// <summary>Progress notifications arrived one by one while the tool ran, not all at once at the end.</summary>
    private static void AssertStreamed(JsonElement call, int steps)
    {
        var progress = call.GetProperty("progress").EnumerateArray().ToList();
        Assert.Equal(Enumerable.Range(1, steps).Select(i => (double)i), progress.Select(p => p.GetProperty("progress").GetDouble()));
        var times = progress.Select(p => p.GetProperty("t").GetInt32()).ToList();
        Assert.True(times[^1] - times[0] >= (steps - 1) * 300 * 0.6, $"progress arrived together, not streamed: {string.Join(", ", times)} ms");
    }

    private static async Task<(string Url, string Authorization)> ConfigHttpAsync(McpWorld world, string name, string gatewayUrl)
    {
        var result = await world.Latchkey.RunAsync("mcp", "config", name, "--client", "claude-code", "--gateway", gatewayUrl);
        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var server = json.RootElement.GetProperty("mcpServers").GetProperty(name);
        return (server.GetProperty("url").GetString()!, server.GetProperty("headers").GetProperty("Authorization").GetString()!);
    }
}
