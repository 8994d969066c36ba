using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// Someone who can write the store (but has no key file) points a credential's upstream at plain http on another
/// machine, to read the secret off the wire or receive it at their own server. The URL policy is applied as every
/// request leaves — the gateway's forwarder, the MCP proxy, the stdio bridge — so nothing is sent there unless the
/// credential was added with <c>--allow-insecure-http</c>. The "other machine" is a real server on a non-loopback
/// address of this host, which records everything that reaches it.
/// </summary>
/// <remarks>
/// The store's row MAC (binding metadata to the master key) is another layer against the same attacker: with it, a
/// row rewritten with <c>sqlite3</c> is quarantined before its URL is even looked at. The tests that write through the
/// store library (which a MAC does not stop) show the send-time refusal on its own.
/// </remarks>
public sealed class UpstreamUrlTests : IAsyncLifetime
{
    private const string Secret = "sk-ant-api03-upstream-url-test-secret";

    private readonly SimulatedUpstream _attacker = new();
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        await _attacker.StartAsync(0, SecurityWorld.NonLoopbackAddress());
        Assert.StartsWith("http://", _attacker.Url, StringComparison.Ordinal);
        Assert.False(global::Latchkey.Http.UrlPolicy.IsLoopback(new Uri(_attacker.Url)), _attacker.Url);
        _gateway = await GatewayProcess.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _attacker.DisposeAsync();
    }

    [Fact]
    public async Task Forward_UpstreamRewrittenWithSqlite3ToPlainHttpOnAnotherMachine_NothingSentThere()
    {
        await _gateway.AddApiKeyAsync("victim", "https://api.anthropic.com", Secret);
        var key = await _gateway.CreateKeyAsync("agent", "victim");
        var database = SecurityWorld.DatabaseOf(_gateway.HomePath);
        await SecurityWorld.Sqlite3Async(database, $"UPDATE credential SET metadata_json = json_set(metadata_json, '$.upstream', '{_attacker.Url}') WHERE name = 'victim';");
        Assert.Contains(_attacker.Url, await SecurityWorld.Sqlite3Async(database, "SELECT metadata_json FROM credential WHERE name = 'victim';"), StringComparison.Ordinal);

        using var response = await SendAsync("/c/victim/v1/messages", key);

        Assert.Empty(_attacker.Requests);
        var body = await response.Content.ReadAsStringAsync();
        // Refused at send time (this change), or — once rows are bound to the master key — quarantined as tampered.
        Assert.True(response.StatusCode is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode} {body}");
        Assert.Contains(Reason(body), new[] { "upstream_url_refused", "quarantined" });
        Assert.DoesNotContain(Secret, body + _gateway.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forward_StoredUpstreamIsPlainHttpToAnotherMachineWithoutTheOptIn_RefusedAtSendTimeNamingTheFix()
    {
        await SecurityWorld.CreateAsync(_gateway.HomePath, "victim", CredentialKind.ApiKey,
            new CredentialMetadata { Upstream = _attacker.Url }, new CredentialSecrets { ApiKey = Secret });
        var key = await _gateway.CreateKeyAsync("agent", "victim");

        using var response = await SendAsync("/c/victim/v1/messages", key);

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, body);
        Assert.Empty(_attacker.Requests);
        using var json = JsonDocument.Parse(body);
        var latchkey = json.RootElement.GetProperty("latchkey");
        Assert.Equal("upstream_url_refused", latchkey.GetProperty("reason").GetString());
        Assert.Contains("plain http to another machine", latchkey.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("Nothing left this machine", latchkey.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("--allow-insecure-http", latchkey.GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("upstream_url_refused;", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        Assert.Contains("upstream was refused by the URL policy", _gateway.Log, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, body + _gateway.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Add_PlainHttpToAnotherMachine_RefusedWithoutTheOptIn_AndWithItTheCredentialWorksOverHttp()
    {
        var refused = await _gateway.Cli(Secret + "\n", "add", "lan", "--upstream", _attacker.Url);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--allow-insecure-http", refused.Stderr, StringComparison.Ordinal);

        await _gateway.AddApiKeyAsync("lan", _attacker.Url, Secret, "--allow-insecure-http");
        var key = await _gateway.CreateKeyAsync("agent", "lan");
        var recorded = await SecurityWorld.Sqlite3Async(SecurityWorld.DatabaseOf(_gateway.HomePath), "SELECT json_extract(metadata_json, '$.allow_insecure_http') FROM credential WHERE name = 'lan';");
        Assert.Equal("1", recorded); // the opt-in is in the record, beside the URL it is for

        using var response = await SendAsync("/c/lan/v1/messages", key);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal(Secret, Assert.Single(_attacker.Requests).Credential); // the user asked for exactly this
    }

    [Fact]
    public async Task Add_OptInForAnHttpsUrl_RefusedAsNotNeeded()
    {
        var result = await _gateway.Cli(Secret + "\n", "add", "web", "--upstream", "https://api.anthropic.com", "--allow-insecure-http");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("only for a plain http URL to another machine", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task McpProxy_StoredServerUrlIsPlainHttpToAnotherMachine_RefusedAndTheTokenNeverSent()
    {
        const string token = "mcp-access-token-never-sent";
        await SecurityWorld.CreateAsync(_gateway.HomePath, "tracker", CredentialKind.OAuth, SecurityWorld.McpServer(_attacker.Url + "/mcp"),
            new CredentialSecrets { AccessToken = token, RefreshToken = "rt" });
        var key = await _gateway.CreateKeyAsync("agent", "tracker");

        using var response = await SendAsync("/mcp/tracker", key, """{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, body);
        Assert.Equal("upstream_url_refused", Reason(body));
        Assert.Contains("latchkey mcp add tracker", body, StringComparison.Ordinal);
        Assert.Empty(_attacker.Requests);
    }

    [Fact]
    public async Task StdioBridge_StoredServerUrlIsPlainHttpToAnotherMachine_AnswersAnErrorAndNeverSendsTheToken()
    {
        await SecurityWorld.CreateAsync(_gateway.HomePath, "tracker", CredentialKind.OAuth, SecurityWorld.McpServer(_attacker.Url + "/mcp"),
            new CredentialSecrets { AccessToken = "mcp-access-token-never-sent", RefreshToken = "rt" });

        var run = await _gateway.Cli("""{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""" + "\n", "mcp", "stdio", "tracker");

        Assert.Empty(_attacker.Requests);
        using var answer = JsonDocument.Parse(run.Stdout.Trim());
        Assert.Equal(7, answer.RootElement.GetProperty("id").GetInt32());
        var message = answer.RootElement.GetProperty("error").GetProperty("message").GetString();
        Assert.Contains("refused to send", message, StringComparison.Ordinal);
        Assert.Contains("plain http to another machine", message, StringComparison.Ordinal);
        Assert.Contains("--allow-insecure-http", message, StringComparison.Ordinal);
        Assert.DoesNotContain("mcp-access-token-never-sent", run.Stdout + run.Stderr, StringComparison.Ordinal);
    }

    private async Task<HttpResponseMessage> SendAsync(string path, string key, string? json = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(json ?? """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Authorization", "Bearer " + key);
        request.Headers.Add("Accept", "application/json, text/event-stream");
        return await _gateway.Http.SendAsync(request);
    }

    private static string? Reason(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.GetProperty("latchkey").GetProperty("reason").GetString();
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }
}
