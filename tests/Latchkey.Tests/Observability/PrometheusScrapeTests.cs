using System.Net;
using System.Text;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Observability;

/// <summary>
/// A real Prometheus (Debian's) scrapes a real <c>latchkey serve</c> after traffic through it to the simulated
/// upstream, and its HTTP API then answers with exactly the requests sent, per credential, client key and status.
/// </summary>
public sealed class PrometheusScrapeTests
{
    private const int Served = 7;
    private const int Refused = 3;

    [Fact]
    public async Task RealPrometheus_ScrapesGatewayAfterTraffic_RequestCountersMatchTheRequestsSent()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("prom", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("prom-agent", "prom");

        for (var i = 0; i < Served; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/prom/v1/messages")
            {
                Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", key);
            using var response = await gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        for (var i = 0; i < Refused; i++)
        {
            using var response = await gateway.Http.GetAsync("/c/prom/v1/models"); // no client key
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        var target = new Uri(gateway.Url).Authority;
        await using var prometheus = await PrometheusServer.StartAsync(target);

        var scraped = await RealTime.UntilAsync(prometheus.TargetAsync, t => t is { Health: "up", LastScrape: not null }, TimeSpan.FromSeconds(60));
        Assert.True(scraped.Health == "up", $"Prometheus did not scrape {target}/metrics: {scraped.Health} {scraped.LastError}\n{prometheus.Log}");

        const string ServedQuery = """latchkey_gateway_requests_total{credential="prom",client_key="prom-agent",route="/c/prom",status="200"}""";
        const string RefusedQuery = """latchkey_gateway_requests_total{route="/c",status="401"}""";
        var served = await RealTime.UntilAsync(() => prometheus.QueryAsync(ServedQuery), r => r.Count == 1 && r[0].Value >= Served, TimeSpan.FromSeconds(30));
        var refused = await RealTime.UntilAsync(() => prometheus.QueryAsync(RefusedQuery), r => r.Count == 1 && r[0].Value >= Refused, TimeSpan.FromSeconds(30));

        Assert.Equal(Served, Assert.Single(served).Value);
        Assert.Equal("latchkey", served[0].Labels["job"]);
        Assert.Equal(Refused, Assert.Single(refused).Value);
        Assert.Equal(string.Empty, refused[0].Labels.GetValueOrDefault("credential", string.Empty)); // no name a caller without a key chose
        var refusals = await prometheus.QueryAsync("""latchkey_client_key_refusals_total{reason="client_key_missing"}""");
        Assert.Equal(Refused, Assert.Single(refusals).Value);
        var upstreamCount = await prometheus.QueryAsync("""latchkey_upstream_duration_seconds_count{credential="prom",status="200"}""");
        Assert.Equal(Served, Assert.Single(upstreamCount).Value);
    }
}
