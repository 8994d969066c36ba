using System.Net;
using System.Text;
using Latchkey.Tests.Observability;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Anyone on the machine can scrape a personal gateway's <c>/metrics</c> (it answers loopback without a key). After
/// agents used it, the scrape must name credentials, key names and counts only: never the credential's secret, a
/// client key, a request body, or a name (a secret, even) that a caller without a key put in the path.
/// </summary>
public sealed class MetricsScrapeTests
{
    [Fact]
    public async Task Metrics_ScrapedAfterAgentRequests_NoSecretClientKeyBodyOrUnauthorizedPath()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        var secret = "sk-ant-api03-SCRAPE" + Guid.NewGuid().ToString("N");
        await gateway.AddApiKeyAsync("scraped", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("scraped-agent", "scraped");
        var bodyMarker = "BODY-" + Guid.NewGuid().ToString("N");
        var pathSecret = "sk-ant-api03-PATH" + Guid.NewGuid().ToString("N");

        using (var request = new HttpRequestMessage(HttpMethod.Post, "/c/scraped/v1/messages"))
        {
            request.Content = new StringContent($$"""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"{{bodyMarker}}"}]}""", Encoding.UTF8, "application/json");
            request.Headers.Add("x-api-key", key);
            using var response = await gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var confused = await gateway.Http.GetAsync($"/c/{pathSecret}/v1/models")) // an agent that put its own secret in the URL, without a key
        {
            Assert.Equal(HttpStatusCode.Unauthorized, confused.StatusCode);
        }

        var scrape = await RealTime.UntilAsync(() => gateway.Http.GetStringAsync("/metrics"),
            text => MetricsText.Value(text, "latchkey_gateway_requests_total") >= 2, TimeSpan.FromSeconds(10));

        Assert.Equal(1, MetricsText.Value(scrape, "latchkey_gateway_requests_total", ("client_key", "scraped-agent"), ("status", "200")));
        foreach (var (what, value) in new[] { ("the credential's secret", secret), ("the client key", key), ("its secret part", key[^20..]), ("the body", bodyMarker), ("the path's secret", pathSecret) })
        {
            Assert.False(scrape.Contains(value, StringComparison.Ordinal), $"/metrics shows {what}");
        }
    }
}
