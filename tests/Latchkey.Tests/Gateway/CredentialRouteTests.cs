using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Gateway;

/// <summary>One real gateway process and one simulated upstream, shared by the credential-route tests.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    internal SimulatedUpstream Upstream { get; } = new();

    internal GatewayProcess Gateway { get; private set; } = null!;

    /// <summary>Every secret and client key the tests used: none may appear in the gateway's log.</summary>
    internal List<string> Secrets { get; } = [];

    public async Task InitializeAsync()
    {
        await Upstream.StartAsync();
        Gateway = await GatewayProcess.StartAsync(null, "--upstream-timeout", "2s");
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
    }

    /// <summary>Adds an Anthropic-style credential (x-api-key) on the simulated upstream and a key for it.</summary>
    internal async Task<(string Secret, string Key)> AnthropicAsync(string name)
    {
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
        Secrets.Add(secret);
        await Gateway.AddApiKeyAsync(name, Upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}", "--extra-header", "anthropic-version: 2023-06-01");
        var key = await Gateway.CreateKeyAsync(name + "-key", name);
        Secrets.Add(key);
        return (secret, key);
    }

    /// <summary>Adds an OpenAI-style credential (Authorization: Bearer) on the simulated upstream and a key for it.</summary>
    internal async Task<(string Secret, string Key)> OpenAiAsync(string name)
    {
        var secret = "sk-proj-" + Guid.NewGuid().ToString("N");
        Secrets.Add(secret);
        await Gateway.AddApiKeyAsync(name, Upstream.Url + "/v1", secret);
        var key = await Gateway.CreateKeyAsync(name + "-key", name);
        Secrets.Add(key);
        return (secret, key);
    }
}

public sealed class CredentialRouteTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    private static readonly string MessageBody = """{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""";

    private GatewayProcess Gateway => fixture.Gateway;

    private SimulatedUpstream Upstream => fixture.Upstream;

    [Fact]
    public async Task Forward_ApiKeyCredential_UpstreamGetsRealKeyAndNeverTheClientKey()
    {
        var (secret, key) = await fixture.AnthropicAsync("inject");
        using var request = Messages("/c/inject/v1/messages", key);
        request.Headers.Add("x-custom", "kept");

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("inject", response.Headers.GetValues("latchkey-credential").Single());
        Assert.StartsWith("req_", response.Headers.GetValues("request-id").Single(), StringComparison.Ordinal);
        var seen = Upstream.Requests.Last(r => r.Credential == secret);
        Assert.Equal("/v1/messages", seen.PathAndQuery);
        Assert.Equal(secret, seen.Headers["x-api-key"]);
        Assert.Equal("2023-06-01", seen.Headers["anthropic-version"]);
        Assert.Equal("kept", seen.Headers["x-custom"]);
        Assert.False(seen.Headers.ContainsKey("Authorization"));
        Assert.DoesNotContain(seen.Headers.Values, v => v.Contains(key, StringComparison.Ordinal));
        Assert.Equal(MessageBody, Encoding.UTF8.GetString(seen.Body));
        Assert.Equal(new Uri(Upstream.Url).Authority, seen.Headers["Host"]);
    }

    [Fact]
    public async Task Forward_ClientKeyInXApiKey_IsReplacedAndQueryKept()
    {
        var (secret, key) = await fixture.OpenAiAsync("openai-q");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/c/openai-q/models?limit=5&after=a%2Fb");
        request.Headers.Add("x-api-key", key);

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Upstream.Requests.Last(r => r.Credential == secret);
        Assert.Equal("/v1/models?limit=5&after=a%2Fb", seen.PathAndQuery);
        Assert.Equal("Bearer " + secret, seen.Headers["Authorization"]);
        Assert.False(seen.Headers.ContainsKey("x-api-key"));
    }

    [Fact]
    public async Task Forward_HopByHopHeaders_AreDropped()
    {
        var (secret, key) = await fixture.AnthropicAsync("hops");
        using var request = Messages("/c/hops/v1/messages", key);
        request.Headers.Connection.Add("x-private-hop");
        request.Headers.Add("x-private-hop", "must-not-pass");
        request.Headers.Add("Keep-Alive", "timeout=5");
        request.Headers.Add("Proxy-Authorization", "Basic c2VjcmV0");

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Upstream.Requests.Last(r => r.Credential == secret);
        Assert.False(seen.Headers.ContainsKey("x-private-hop"));
        Assert.False(seen.Headers.ContainsKey("Keep-Alive"));
        Assert.False(seen.Headers.ContainsKey("Proxy-Authorization"));
    }

    [Fact]
    public async Task Forward_NoClientKey_Returns401SayingHowToGetOne()
    {
        await fixture.AnthropicAsync("nokey");
        var before = Upstream.Requests.Count;
        using var request = Messages("/c/nokey/v1/messages", key: null);

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("authentication_error", (string?)body["error"]!["type"]);
        Assert.Equal("client_key_missing", (string?)body["latchkey"]!["reason"]);
        Assert.Contains("latchkey keys create", (string?)body["latchkey"]!["fix"], StringComparison.Ordinal);
        Assert.StartsWith("client_key_missing", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        Assert.Equal(before, Upstream.Requests.Count);
    }

    [Fact]
    public async Task Forward_UnknownClientKey_Returns401()
    {
        await fixture.AnthropicAsync("badkey");
        using var request = Messages("/c/badkey/v1/messages", "lk_" + new string('x', 40));

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("client_key_", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forward_KeyForAnotherCredential_Returns403AndNothingSent()
    {
        var (_, keyA) = await fixture.AnthropicAsync("scoped-a");
        var (secretB, _) = await fixture.AnthropicAsync("scoped-b");

        using var response = await Gateway.Http.SendAsync(Messages("/c/scoped-b/v1/messages", keyA));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("client_key_not_allowed", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(Upstream.Requests, r => r.Credential == secretB);
    }

    [Fact]
    public async Task Forward_RevokedKey_IsRefusedWithinTheCacheTime()
    {
        var (_, key) = await fixture.AnthropicAsync("revoke");
        using (var ok = await Gateway.Http.SendAsync(Messages("/c/revoke/v1/messages", key)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        var revoked = await Gateway.Cli(null, "keys", "revoke", "revoke-key");
        Assert.True(revoked.ExitCode == 0, revoked.ToString());

        // The gateway process caches a key check for a second of its clock.
        var (status, body) = await RealTime.UntilAsync(
            async () =>
            {
                using var response = await Gateway.Http.SendAsync(Messages("/c/revoke/v1/messages", key));
                return (response.StatusCode, await response.Content.ReadAsStringAsync());
            },
            r => r.StatusCode != HttpStatusCode.OK, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(250));

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains("client_key_revoked", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forward_HeaderWithCarriageReturn_IsRefusedAndNothingSent()
    {
        var (secret, key) = await fixture.AnthropicAsync("crlf");
        var uri = new Uri(Gateway.Url);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        var raw = $"POST /c/crlf/v1/messages HTTP/1.1\r\nHost: {uri.Authority}\r\nx-api-key: {key}\r\nx-evil: a\rInjected: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(raw));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync();

        Assert.StartsWith("HTTP/1.1 400", statusLine, StringComparison.Ordinal);
        Assert.DoesNotContain(Upstream.Requests, r => r.Credential == secret);
    }

    [Fact]
    public async Task Forward_DotSegmentsInPath_AreRefused()
    {
        var (secret, key) = await fixture.AnthropicAsync("dots");
        foreach (var target in new[] { "/c/dots/v1/%2e%2e/admin", "/c/dots/v1/../admin", "/c/dots/v1/%2E./x" })
        {
            // Raw bytes: an HTTP client library would normalise the path before sending it.
            var statusLine = await RawRequestAsync($"GET {target} HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n");
            Assert.True(statusLine is not null && (statusLine.StartsWith("HTTP/1.1 400", StringComparison.Ordinal) || statusLine.StartsWith("HTTP/1.1 404", StringComparison.Ordinal)), $"{target}: {statusLine}");
        }

        Assert.DoesNotContain(Upstream.Requests, r => r.Credential == secret);
    }

    private async Task<string?> RawRequestAsync(string raw)
    {
        var uri = new Uri(Gateway.Url);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(raw));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        return await reader.ReadLineAsync();
    }

    [Fact]
    public async Task Forward_ServerSentEvents_ReachTheAgentOneByOne()
    {
        var (_, key) = await fixture.AnthropicAsync("sse");
        Upstream.Behaviour.ChunkDelay = TimeSpan.FromMilliseconds(150);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/sse/v1/messages")
            {
                Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", key);
            using var response = await Gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
            var requestId = response.Headers.GetValues("request-id").Single();

            // Each event must arrive before the upstream has even written the next one: nothing is buffered.
            var received = new List<(string Event, DateTimeOffset At)>();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    received.Add((line[7..], DateTimeOffset.UtcNow));
                }
            }

            var sent = Upstream.EventsSent.Where(e => e.RequestId == requestId).OrderBy(e => e.Index).ToList();
            Assert.Equal(["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], received.Select(r => r.Event));
            Assert.Equal(received.Count, sent.Count);
            for (var i = 0; i + 1 < received.Count; i++)
            {
                Assert.True(received[i].At < sent[i + 1].At, $"event {i} ({received[i].Event}) reached the agent at {received[i].At:O}, after the upstream wrote event {i + 1} at {sent[i + 1].At:O}");
            }
        }
        finally
        {
            Upstream.Behaviour.ChunkDelay = TimeSpan.Zero;
        }
    }

    [Fact]
    public async Task Forward_LargeStreamedBody_ArrivesIntact()
    {
        var (secret, key) = await fixture.OpenAiAsync("bigbody");
        var payload = new byte[24 * 1024 * 1024];
        new Random(7).NextBytes(payload);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/bigbody/echo/upload");
        request.Content = new ByteArrayContent(payload);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(payload.Length, (int)echo["body_length"]!);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(payload)), (string?)echo["body_sha256"]);
        Assert.Equal("/v1/echo/upload", (string?)echo["path"]);
        Assert.Equal("Bearer " + secret, (string?)echo["headers"]!["authorization"]);
    }

    [Fact]
    public async Task Forward_UpstreamResetsConnection_Returns502WithDiagnosticAndGatewayStaysUp()
    {
        var (_, key) = await fixture.AnthropicAsync("reset");
        using var request = Messages("/c/reset/v1/messages", key);
        request.Headers.Add("sim-scenario", "reset");

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.StartsWith("upstream_reset", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        using var health = await Gateway.Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var after = await Gateway.Http.SendAsync(Messages("/c/reset/v1/messages", key));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Forward_UpstreamNeverAnswers_Returns504AfterTheTimeout()
    {
        var (_, key) = await fixture.AnthropicAsync("hang");
        using var request = Messages("/c/hang/v1/messages", key);
        request.Headers.Add("sim-scenario", "hang");

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.StartsWith("upstream_timeout", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        Assert.Contains("--upstream-timeout", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forward_UpstreamUnreachable_Returns502Unreachable()
    {
        var port = FreePort();
        var secret = "sk-ant-" + Guid.NewGuid().ToString("N");
        fixture.Secrets.Add(secret);
        await Gateway.AddApiKeyAsync("down", $"http://127.0.0.1:{port}", secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await Gateway.CreateKeyAsync("down-key", "down");

        using var response = await Gateway.Http.SendAsync(Messages("/c/down/v1/messages", key));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.StartsWith("upstream_unreachable", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("auth_error", 401, "authentication_failed", true)]
    [InlineData("oauth_not_supported", 401, "oauth_not_supported", true)]
    [InlineData("restricted", 400, "credential_restricted", true)]
    [InlineData("missing_scope", 403, "missing_scope", true)]
    [InlineData("permission", 403, "permission_denied", true)]
    [InlineData("rate_limit", 429, "rate_limited", false)]
    [InlineData("overloaded", 529, "overloaded", false)]
    [InlineData("server_error", 500, "upstream_error", false)]
    public async Task Forward_AnthropicFailure_PassesStatusAndRequestIdExplainsCredentialFailuresInTheBodyAndAddsDiagnostic(string scenario, int status, string reason, bool recorded)
    {
        var name = "diag-" + scenario.Replace('_', '-');
        var (secret, key) = await fixture.AnthropicAsync(name);
        using var request = Messages($"/c/{name}/v1/messages", key);
        request.Headers.Add("sim-scenario", scenario);

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        var requestId = response.Headers.GetValues("request-id").Single();
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("error", (string?)body["type"]);
        Assert.Equal(requestId, (string?)body["request_id"]);
        if (recorded)
        {
            // A credential failure: the body says what Latchkey found and how to fix it, in the upstream's shape and type.
            Assert.Equal(reason, (string?)body["latchkey"]!["reason"]);
            Assert.Equal((string?)body["latchkey"]!["fix"], ((string?)body["error"]!["message"])![^((string?)body["latchkey"]!["fix"])!.Length..]);
            Assert.DoesNotContain("The upstream said", (string?)body["error"]!["message"], StringComparison.Ordinal);
        }
        else
        {
            Assert.Null(body["latchkey"]); // the upstream's body, unchanged
        }
        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.StartsWith(reason + ";", diagnostic, StringComparison.Ordinal);
        Assert.Contains($"request-id=\"{requestId}\"", diagnostic, StringComparison.Ordinal);
        Assert.Contains("fix=\"", diagnostic, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, diagnostic, StringComparison.Ordinal);
        if (status is 429 or 529)
        {
            Assert.Contains("retry-after=\"1\"", diagnostic, StringComparison.Ordinal);
        }

        var view = await StatusAsync(name);
        if (recorded)
        {
            Assert.Equal(reason, (string?)view["last_upstream_failure"]!["code"]);
            Assert.Equal(requestId, (string?)view["last_upstream_failure"]!["request_id"]);
            Assert.Equal(status, (int)view["last_upstream_failure"]!["status"]!);
        }
        else
        {
            Assert.Null(view["last_upstream_failure"]);
        }
    }

    [Fact]
    public async Task Forward_RestrictedCredential_SaysSoAndPointsAtAnApiKey()
    {
        var (_, key) = await fixture.AnthropicAsync("restricted-words");
        using var request = Messages("/c/restricted-words/v1/messages", key);
        request.Headers.Add("sim-scenario", "restricted");

        using var response = await Gateway.Http.SendAsync(request);

        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.Contains("only authorized for use with Claude Code", diagnostic, StringComparison.Ordinal);
        Assert.Contains("API key", diagnostic, StringComparison.Ordinal);
        Assert.Contains("latchkey add restricted-words-api", diagnostic, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forward_MissingScope_NamesTheScopeAndTheLoginCommand()
    {
        var (_, key) = await fixture.AnthropicAsync("scope-words");
        using var request = Messages("/c/scope-words/v1/messages", key);
        request.Headers.Add("sim-scenario", "missing_scope");

        using var response = await Gateway.Http.SendAsync(request);

        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.Contains("user:sessions:claude_code", diagnostic, StringComparison.Ordinal);
        Assert.Contains("latchkey login scope-words --scope", diagnostic, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forward_OpenAiInvalidApiKey_IsClassifiedAndTheKeyIsNotQuoted()
    {
        var (secret, key) = await fixture.OpenAiAsync("oa-invalid");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/oa-invalid/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        request.Headers.Add("sim-scenario", "invalid_api_key");

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("invalid_api_key", (string?)body["error"]!["code"]);
        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.StartsWith("invalid_api_key;", diagnostic, StringComparison.Ordinal);
        Assert.Contains("request-id=\"" + response.Headers.GetValues("x-request-id").Single() + "\"", diagnostic, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, diagnostic, StringComparison.Ordinal);
        Assert.Equal("invalid_api_key", (string?)(await StatusAsync("oa-invalid"))["last_upstream_failure"]!["code"]);
    }

    [Fact]
    public async Task Forward_SuccessAfterFailure_ClearsTheRecordedFailure()
    {
        var (_, key) = await fixture.AnthropicAsync("heal");
        using (var failing = Messages("/c/heal/v1/messages", key))
        {
            failing.Headers.Add("sim-scenario", "auth_error");
            using var _ = await Gateway.Http.SendAsync(failing);
        }

        Assert.NotNull((await StatusAsync("heal"))["last_upstream_failure"]);
        await RealTime.ForAsync(TimeSpan.FromMilliseconds(1100)); // past the gateway process's one-second credential cache
        using (var ok = await Gateway.Http.SendAsync(Messages("/c/heal/v1/messages", key)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        Assert.Null((await StatusAsync("heal"))["last_upstream_failure"]);
    }

    [Fact]
    public async Task Forward_TenThousandRequestsAt64Connections_NoGatewayError()
    {
        var (_, key) = await fixture.AnthropicAsync("load");
        var errors = 0;
        var done = 0;
        var next = -1;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri(Gateway.Url) };
        var workers = Enumerable.Range(0, 64).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < 10_000)
            {
                using var request = Messages("/c/load/v1/messages", key);
                using var response = await http.SendAsync(request);
                await response.Content.ReadAsByteArrayAsync();
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref errors);
                }

                Interlocked.Increment(ref done);
            }
        });

        await Task.WhenAll(workers);

        Assert.Equal(10_000, done);
        Assert.Equal(0, errors);
    }

    [Fact]
    public async Task Health_AnyTime_ReportsOkWithTheStore()
    {
        using var response = await Gateway.Http.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("ok", (string?)body["status"]);
        Assert.Equal("sqlite", (string?)body["store"]);
    }

    [Fact]
    public async Task Serve_UnixSocket_IsOwnerOnlyAndServes()
    {
        var socket = Path.Combine(Gateway.HomePath, "gateway.sock");
        Assert.True(File.Exists(socket));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        using var http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), ct);
                return new NetworkStream(s, ownsSocket: true);
            },
        });
        using var response = await http.GetAsync("http://localhost/healthz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Log_AfterEveryKindOfRequest_HoldsNoSecretOrClientKey()
    {
        var (_, key) = await fixture.AnthropicAsync("logcheck");
        foreach (var scenario in new[] { "ok", "auth_error", "restricted", "rate_limit", "reset" })
        {
            using var request = Messages("/c/logcheck/v1/messages", key);
            request.Headers.Add("sim-scenario", scenario);
            using var _ = await Gateway.Http.SendAsync(request);
        }

        await RealTime.UntilAsync(() => Gateway.Log.Contains("logcheck", StringComparison.Ordinal), TimeSpan.FromSeconds(10)); // the log comes through the gateway's stdout
        var log = Gateway.Log;
        Assert.Contains("logcheck", log, StringComparison.Ordinal); // the failures were logged...
        foreach (var secret in fixture.Secrets)
        {
            Assert.DoesNotContain(secret, log, StringComparison.Ordinal); // ...without any secret
        }
    }

    private async Task<JsonNode> StatusAsync(string name)
    {
        var result = await Gateway.Cli(null, "status", name, "--json");
        return JsonNode.Parse(result.Stdout)!.AsArray().Single()!;
    }

    private static HttpRequestMessage Messages(string path, string? key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(MessageBody, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("x-api-key", key);
        }

        return request;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
