using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Xunit.Abstractions;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// A 401 from an upstream on an OAuth credential, with tokens from the real authorization server (npm
/// <c>oidc-provider</c>, single-use rotating refresh tokens): the gateway refreshes once (coalesced across concurrent
/// requests) and resends a kept body with the new token; a body over the 4 MiB retry limit is not resent; a refresh
/// the server refuses gives the agent the upstream's 401 with a diagnostic and the credential needs sign-in.
/// The simulated upstream refuses the first access token only, as a provider does after revoking it.
/// </summary>
public sealed class RefreshRetryRealServerTests(ITestOutputHelper output)
{
    private const string MessageBody = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Forward_UpstreamRefusesTheAccessToken_OneRefreshAndTheRetryCarriesTheNewToken()
    {
        await using var world = await World.StartAsync(output);

        using var response = await world.PostAsync(MessageBody);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await Describe(response));
        Assert.Equal("message", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("type").GetString());
        var counters = await world.Lk.Peer.CountersAsync();
        Assert.Equal(1, counters.RefreshRequests);
        Assert.Equal(1, counters.Refresh);
        var seen = world.Upstream.Requests.ToList();
        Assert.Equal(2, seen.Count);
        Assert.Equal(world.FirstToken, seen[0].Credential);
        var stored = (await world.Lk.ReadAsync("claude"))!.Secrets.AccessToken!;
        Assert.NotEqual(world.FirstToken, stored);
        Assert.Equal(stored, seen[1].Credential);
        Assert.Equal(seen[0].Body, seen[1].Body); // the kept body, sent again unchanged
        Assert.True((await world.Lk.Peer.IntrospectAsync(stored)).GetProperty("active").GetBoolean());
        Assert.DoesNotContain(world.Key, string.Concat(seen.SelectMany(r => r.Headers.Values)), StringComparison.Ordinal);
        world.AssertNoSecretInLog(stored);
    }

    [Fact]
    public async Task Forward_EightConcurrent401s_CoalesceIntoOneRefreshAndAllSucceed()
    {
        const int requests = 8;
        await using var world = await World.StartAsync(output);
        await world.Lk.Peer.SetFaultsAsync(new { delayMs = 1000 }); // the refresh is slow: every request meets its 401 before it ends

        var responses = await Task.WhenAll(Enumerable.Range(0, requests).Select(_ => world.PostAsync(MessageBody)));

        foreach (var r in responses)
        {
            Assert.True(r.StatusCode == HttpStatusCode.OK, await Describe(r));
            r.Dispose();
        }

        var counters = await world.Lk.Peer.CountersAsync();
        Assert.Equal(1, counters.RefreshRequests);
        Assert.Equal(1, counters.Refresh);
        var stored = (await world.Lk.ReadAsync("claude"))!.Secrets.AccessToken!;
        var seen = world.Upstream.Requests.ToList();
        Assert.Equal(requests, seen.Count(r => r.Credential == world.FirstToken));
        Assert.Equal(requests, seen.Count(r => r.Credential == stored));
        Assert.Equal(2 * requests, seen.Count);
    }

    [Fact]
    public async Task Forward_401WithABodyOverTheRetryLimit_NotResentTheAgentGetsThe401WithTheDiagnostic_AndItsRetryWorks()
    {
        await using var world = await World.StartAsync(output);
        var big = new StringBuilder("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":" """.TrimEnd());
        big.Append('x', (4 * 1024 * 1024) + 1 - big.Length - 3).Append("\"}]}");
        Assert.True(Encoding.UTF8.GetByteCount(big.ToString()) > 4 * 1024 * 1024);

        using var response = await world.PostAsync(big.ToString());

        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, await Describe(response));
        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.StartsWith("authentication_failed;", diagnostic, StringComparison.Ordinal);
        Assert.Contains("4 MiB retry limit", diagnostic, StringComparison.Ordinal);
        Assert.Contains("request-id=\"req_", diagnostic, StringComparison.Ordinal);
        Assert.Equal("authentication_error", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString()); // the upstream's body, unchanged
        var seen = Assert.Single(world.Upstream.Requests);
        Assert.Equal(world.FirstToken, seen.Credential);
        Assert.Equal(1, (await world.Lk.Peer.CountersAsync()).Refresh); // refreshed, so the agent's own retry works

        world.Upstream.Requests.Clear();
        using var retry = await world.PostAsync(MessageBody);
        Assert.True(retry.StatusCode == HttpStatusCode.OK, await Describe(retry));
        Assert.Equal((await world.Lk.ReadAsync("claude"))!.Secrets.AccessToken, Assert.Single(world.Upstream.Requests).Credential);
        Assert.Equal(1, (await world.Lk.Peer.CountersAsync()).RefreshRequests);
    }

    [Fact]
    public async Task Forward_401AndTheRefreshIsRefused_TheAgentGetsThe401WithLoginAdvice_AndStatusNeedsAuth()
    {
        await using var world = await World.StartAsync(output);

        // Someone else spends Latchkey's refresh token: the server rotates it, so Latchkey's next use is a replay,
        // which the server refuses (invalid_grant) and answers by revoking the whole grant.
        var record = (await world.Lk.ReadAsync("claude"))!;
        using (var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }))
        using (var spent = await http.PostAsync(new Uri(record.Metadata.TokenEndpoint!), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = record.Secrets.RefreshToken!, ["client_id"] = record.Metadata.Client!.ClientId, ["resource"] = world.Lk.Peer.Resource,
        })))
        {
            Assert.Equal(HttpStatusCode.OK, spent.StatusCode);
        }

        await world.Lk.Peer.ResetCountersAsync();

        using var response = await world.PostAsync(MessageBody);

        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, await Describe(response));
        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.StartsWith("authentication_failed;", diagnostic, StringComparison.Ordinal);
        Assert.Contains("credential=\"claude\"", diagnostic, StringComparison.Ordinal);
        Assert.Contains("refreshing it failed", diagnostic, StringComparison.Ordinal);
        Assert.Contains("latchkey login claude", diagnostic, StringComparison.Ordinal);
        var counters = await world.Lk.Peer.CountersAsync();
        Assert.Equal(1, counters.RefreshRequests);
        Assert.Equal(1, counters.RefreshError);
        Assert.Single(world.Upstream.Requests); // nothing to retry with

        var status = await world.Lk.StatusAsync("claude");
        Assert.Equal("needs-auth", status.GetProperty("state").GetString());
        Assert.Equal("invalid_grant", status.GetProperty("reason").GetProperty("code").GetString());
        Assert.Contains("latchkey login claude", status.GetProperty("reason").GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.Equal("authentication_failed", status.GetProperty("last_upstream_failure").GetProperty("code").GetString());
        Assert.StartsWith("req_", status.GetProperty("last_upstream_failure").GetProperty("request_id").GetString(), StringComparison.Ordinal);

        // The next request is refused by the gateway itself, saying what to do.
        using var next = await world.PostAsync(MessageBody);
        Assert.NotEqual(HttpStatusCode.OK, next.StatusCode);
        Assert.Contains("latchkey login claude", await next.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Single(world.Upstream.Requests);
        world.AssertNoSecretInLog(record.Secrets.RefreshToken!);
    }

    private static async Task<string> Describe(HttpResponseMessage response) =>
        $"{(int)response.StatusCode} {string.Join("; ", response.Headers.Where(h => h.Key.StartsWith("latchkey", StringComparison.Ordinal)).Select(h => $"{h.Key}: {string.Join(",", h.Value)}"))} {await response.Content.ReadAsStringAsync()}";

    /// <summary>The authorization server, a credential signed in against it, the upstream that refuses its first access token, a gateway and a client key.</summary>
    private sealed class World : IAsyncDisposable
    {
        private World(LatchkeyAgainstPeer lk, SimulatedUpstream upstream, GatewayProcess gateway, string key, string firstToken)
        {
            Lk = lk;
            Upstream = upstream;
            Gateway = gateway;
            Key = key;
            FirstToken = firstToken;
        }

        public LatchkeyAgainstPeer Lk { get; }

        public SimulatedUpstream Upstream { get; }

        public GatewayProcess Gateway { get; }

        public string Key { get; }

        public string FirstToken { get; }

        public static async Task<World> StartAsync(ITestOutputHelper output)
        {
            var lk = await LatchkeyAgainstPeer.StartAsync(output);
            var rejected = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
            var upstream = new SimulatedUpstream(new SimBehaviour { Accept = t => !rejected.ContainsKey(t) });
            await upstream.StartAsync();
            await lk.LoginAsync("claude", "--resource", lk.Peer.Resource, "--upstream", upstream.Url);
            var first = (await lk.ReadAsync("claude"))!.Secrets.AccessToken!;
            rejected[first] = true;
            var gateway = await GatewayProcess.StartAsync(lk.TempHome);
            var key = await gateway.CreateKeyAsync("agent", "claude");
            await lk.Peer.ResetCountersAsync();
            return new World(lk, upstream, gateway, key, first);
        }

        public async Task<HttpResponseMessage> PostAsync(string body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/claude/v1/messages") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("x-api-key", Key);
            request.Headers.Add("anthropic-version", "2023-06-01");
            return await Gateway.Http.SendAsync(request);
        }

        public void AssertNoSecretInLog(params string[] more)
        {
            foreach (var secret in more.Append(FirstToken).Append(Key))
            {
                Assert.DoesNotContain(secret, Gateway.Log, StringComparison.Ordinal);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Gateway.DisposeAsync();
            await Upstream.DisposeAsync();
            await Lk.DisposeAsync();
        }
    }
}
