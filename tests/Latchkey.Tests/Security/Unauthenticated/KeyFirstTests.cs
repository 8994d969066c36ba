using System.Diagnostics;
using System.Net;
using System.Text;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// A caller without a client key reaches the gateway's port and sends requests for an OAuth credential whose
/// access token is due, with garbage where the credential's own header would be. Before the key is checked,
/// nothing about the credential may be read: no store read, no refresh, no request to the authorization server
/// (the real oidc-provider counts them), and the answer is the same for a name that exists and one that does not.
/// </summary>
public sealed class KeyFirstTests(ITestOutputHelper output)
{
    /// <summary>What unauthenticated callers send in place of a key: nothing, garbage in each header a key may use,
    /// a value shaped almost like a key, and a well-formed key this gateway never issued.</summary>
    private static readonly string[][] Presented =
    [
        [],
        ["Authorization: Bearer garbage"],
        ["x-api-key: garbage"],
        ["api-key: garbage"],
        ["Authorization: Bearer lk_not-a-key"],
        ["Authorization: Bearer lk_abcdefghijkl_" + new string('A', 43)],
    ];

    [Fact]
    public async Task Forward_WithoutAValidKey_CausesNoTokenEndpointTrafficAndAnswersTheSameForAnyName()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await lk.Peer.SetFaultsAsync(new { atTtl = 2 });
        await lk.LoginAsync("claude", "--resource", lk.Peer.Resource, "--upstream", upstream.Url);
        await using var gateway = await GatewayProcess.StartAsync(lk.TempHome);
        await File.WriteAllTextAsync(Path.Combine(lk.Home, "routes.json"), """{ "routers": { "claude": { "routes": [ { "model": "*", "targets": [ { "credential": "claude" } ] } ] } } }""");
        var expires = (await lk.ReadAsync("claude"))!.Metadata.ExpiresAt!.Value;
        await RealTime.PastAsync(expires); // the token engine's clock is the real one in the gateway process: wait until the token is due

        await lk.Peer.ResetCountersAsync();

        foreach (var headers in Presented)
        {
            foreach (var (method, target) in new[] { ("POST", "/c/{0}/v1/messages"), ("GET", "/c/{0}"), ("POST", "/mcp/{0}"), ("POST", "/r/{0}/v1/messages") })
            {
                var existing = await SendAsync(gateway, method, string.Format(System.Globalization.CultureInfo.InvariantCulture, target, "claude"), headers);
                var missing = await SendAsync(gateway, method, string.Format(System.Globalization.CultureInfo.InvariantCulture, target, "nosuch"), headers);

                Assert.True(existing.Status == 401, $"{method} {target} [{string.Join("; ", headers)}]: {existing.Status} {existing.Body}");
                Assert.Equal(Normalised(existing, "claude"), Normalised(missing, "nosuch"));
            }
        }

        var counters = await lk.Peer.CountersAsync();
        Assert.Equal(0, counters.TokenRequests);
        Assert.Empty(counters.WellKnown);
        Assert.Empty(upstream.Requests);

        // Roughly the same time for both names: nothing about either is looked up.
        var times = new Dictionary<string, List<double>> { ["claude"] = [], ["nosuch"] = [] };
        for (var i = 0; i < 15; i++)
        {
            foreach (var name in times.Keys)
            {
                var watch = Stopwatch.StartNew();
                await SendAsync(gateway, "POST", $"/c/{name}/v1/messages", ["Authorization: Bearer garbage"]);
                times[name].Add(watch.Elapsed.TotalMilliseconds);
            }
        }

        var (a, b) = (Median(times["claude"]), Median(times["nosuch"]));
        output.WriteLine($"median answer time: existing {a:0.0} ms, missing {b:0.0} ms");
        Assert.True(Math.Abs(a - b) < 25, $"existing {a:0.0} ms vs missing {b:0.0} ms");

        // The setup was a real threat: the token was due, so the first authorized request refreshes it.
        var key = await gateway.CreateKeyAsync("agent", "claude");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/claude/v1/messages") { Content = new StringContent("""{"model":"m","max_tokens":1,"messages":[]}""", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        using var served = await gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(1, (await lk.Peer.CountersAsync()).RefreshRequests);
    }

    [Fact]
    public async Task Forward_KeyInTheCredentialsOwnHeader_IsFoundWithoutTheCredentialAndNeverForwarded()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        var secret = "azure-" + Guid.NewGuid().ToString("N");
        await gateway.AddApiKeyAsync("azure", upstream.Url, secret, "--header", "api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("azure-key", "azure");

        foreach (var header in new[] { "api-key", "x-goog-api-key", "x-custom-auth" })
        {
            var answer = await SendAsync(gateway, "GET", "/c/azure/echo/x", [$"{header}: {key}"]);

            Assert.True(answer.Status == 200, $"{header}: {answer.Status} {answer.Body}");
            Assert.Contains(secret, answer.Body, StringComparison.Ordinal); // the echo: the real credential went upstream...
            Assert.DoesNotContain("lk_", answer.Body, StringComparison.Ordinal); // ...and no client key did
        }
    }

    private static Task<RawResponse> SendAsync(GatewayProcess gateway, string method, string target, string[] headers) =>
        RawHttp.SendWithBodyAsync(gateway.Url, method, target, "{}", [.. headers, "Content-Type: application/json"]);

    /// <summary>Status, headers (without Date) and body, with the requested name replaced (the answer repeats it in
    /// the advice on how to get a key, which tells nothing about whether it exists).</summary>
    private static string Normalised(RawResponse answer, string name) =>
        $"{answer.Status}\n{string.Join("\n", answer.Headers.Where(h => h.Key != "Date").OrderBy(h => h.Key, StringComparer.Ordinal).Select(h => $"{h.Key}: {h.Value}"))}\n{answer.Body}"
            .Replace(name, "NAME", StringComparison.Ordinal);

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}
