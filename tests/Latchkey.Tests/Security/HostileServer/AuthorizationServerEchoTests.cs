using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// A hostile (or careless) authorization server that answers Latchkey's refresh by quoting the request: the
/// refresh token and the client secret it received, in <c>error_description</c>, in <c>error</c> itself and in its
/// request-id header, with control characters and a forged log line thrown in. The real authorization server
/// (oidc-provider, a confidential client) is made to answer so, through a real gateway. What it said is reported
/// (that is what the diagnostic is for), but never the secrets: not in the agent's answers (body and headers), not in
/// the gateway's log, not in <c>latchkey status --json</c>; and the control characters cannot forge a log line.
/// </summary>
public sealed class AuthorizationServerEchoTests(ITestOutputHelper output)
{
    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";
    private const string ForgedLogLine = "Latchkey gateway on http://evil.example";

    /// <summary>
    /// <c>terminal</c>: 400 <c>invalid_grant</c> to the refresh forced by the upstream's 401 (the agent gets the
    /// upstream's 401 with the refresh failure in its diagnostic, then the gateway's own 401).
    /// <c>transient</c>: 503 <c>temporarily_unavailable</c> to the refresh of a due token (the gateway's 503).
    /// <c>code</c>: 400 whose <c>error</c> code is the refresh token itself (an unknown code: transient, 503).
    /// </summary>
    [Theory]
    [InlineData("terminal")]
    [InlineData("transient")]
    [InlineData("code")]
    public async Task Refresh_ServerQuotesTheRefreshTokenAndClientSecret_NeitherReachesTheAgentTheLogOrStatus(string answer)
    {
        var clientSecret = "CANARY-client-secret-" + Guid.NewGuid().ToString("N");
        var clients = JsonSerializer.Serialize(new[]
        {
            new Dictionary<string, object>
            {
                ["client_id"] = "latchkey-echo", ["client_secret"] = clientSecret, ["token_endpoint_auth_method"] = "client_secret_basic",
                ["application_type"] = "native", ["redirect_uris"] = new[] { "http://127.0.0.1/callback" },
                ["grant_types"] = new[] { "authorization_code", "refresh_token" }, ["response_types"] = new[] { "code" },
            },
        });
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["CLIENTS"] = clients });
        string? refused = null;
        await using var upstream = new SimulatedUpstream(new SimBehaviour { Accept = token => token != refused });
        await upstream.StartAsync();

        var due = answer != "terminal";
        if (due)
        {
            await lk.Peer.SetFaultsAsync(new { atTtl = 2 });
        }

        await lk.LoginWithInputAsync(clientSecret + "\n", "claude", "--resource", lk.Peer.Resource, "--upstream", upstream.Url, "--client-id", "latchkey-echo", "--client-secret-stdin");
        var record = (await lk.ReadAsync("claude"))!;
        refused = record.Secrets.AccessToken; // the upstream refuses the first token: a 401 forces a refresh
        if (due)
        {
            await RealTime.PastAsync(record.Metadata.ExpiresAt!.Value); // a real server's token, on the real clock
        }

        var refreshToken = record.Secrets.RefreshToken!;
        var secrets = new[] { ("refresh token", refreshToken), ("client secret", clientSecret) };
        await lk.Peer.SetFaultsAsync(new
        {
            echoRefresh = new
            {
                status = answer == "transient" ? 503 : 400,
                body = new Dictionary<string, string>
                {
                    ["error"] = answer switch { "terminal" => "invalid_grant", "transient" => "temporarily_unavailable", _ => "{refresh_token}" },
                    ["error_description"] = $"refresh_token={{refresh_token}} with client_secret={{client_secret}} is not valid\u001b[2J\n{ForgedLogLine}",
                },
                headers = new Dictionary<string, string> { ["x-request-id"] = "{refresh_token}" },
            },
        });
        await lk.Peer.ResetCountersAsync();
        await using var gateway = await GatewayProcess.StartAsync(lk.TempHome);
        var key = await gateway.CreateKeyAsync("agent", "claude");

        var first = await SendAsync(gateway, key);
        var second = await SendAsync(gateway, key);
        var status = await Processes.Latchkey(lk.Home, null, "status", "claude", "--json"); // not echoed to the test output

        // The server did answer so, and what it said was reported (quoted), or the absence of the secrets proves nothing.
        // (None of these assertions prints what it looked at: on a regression that text holds the secrets.)
        Assert.True((await lk.Peer.CountersAsync()).RefreshRequests >= 1, "the gateway never asked the authorization server for a refresh");
        Assert.Equal(answer == "terminal" ? HttpStatusCode.Unauthorized : HttpStatusCode.ServiceUnavailable, first.Status);
        Assert.True(first.Text.Contains("is not valid", StringComparison.Ordinal), "the agent's answer does not quote the server");
        Assert.True(status.Stdout.Contains("is not valid", StringComparison.Ordinal), "status does not quote the server");
        if (answer == "terminal")
        {
            Assert.True(first.Diagnostic.Contains("refreshing it failed", StringComparison.Ordinal), "the diagnostic does not explain the refresh failure"); // the upstream's 401, explained
            Assert.Equal(HttpStatusCode.Unauthorized, second.Status); // then the gateway's own: needs sign-in
        }

        SecretAssert.Absent(first.Text, "the agent's first answer", secrets);
        SecretAssert.Absent(second.Text, "the agent's second answer", secrets);
        SecretAssert.Absent(gateway.Log, "the gateway's log", secrets);
        SecretAssert.Absent(status.All, "latchkey status --json", secrets);
        Assert.DoesNotContain('\u001b', first.Text + second.Text + gateway.Log + status.Stdout);
        Assert.DoesNotContain(gateway.Log.Split('\n'), line => line.StartsWith(ForgedLogLine, StringComparison.Ordinal));
    }

    private static async Task<(HttpStatusCode Status, string Diagnostic, string Text)> SendAsync(GatewayProcess gateway, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/claude/v1/messages") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        request.Headers.Add("anthropic-version", "2023-06-01");
        using var response = await gateway.Http.SendAsync(request);
        var diagnostic = response.Headers.TryGetValues("latchkey-diagnostic", out var values) ? string.Join(", ", values) : string.Empty;
        return (response.StatusCode, diagnostic, await SecretAssert.AllOfAsync(response));
    }
}
