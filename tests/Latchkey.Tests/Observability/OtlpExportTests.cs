using System.Net;
using System.Text;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Observability;

/// <summary>
/// Spans and metrics leave the gateway over OTLP only when the standard <c>OTEL_EXPORTER_OTLP_*</c> variables say
/// where to: a real <c>latchkey serve</c>, a receiver standing in for the collector, and a clean stop (SIGTERM), at
/// which the gateway sends what it still holds, so nothing here waits for an export interval.
/// </summary>
public sealed class OtlpExportTests
{
    [Fact]
    public async Task Serve_OtlpEndpointSet_SpansAndMetricsArriveWithRequestIdAndNoSecretKeyOrBody()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        var environment = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Url,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        };
        await using var gateway = await GatewayProcess.StartAsync(null, environment);
        var secret = "sk-ant-api03-OTLP" + Guid.NewGuid().ToString("N");
        await gateway.AddApiKeyAsync("traced", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("traced-agent", "traced");
        var bodyMarker = "BODY-" + Guid.NewGuid().ToString("N");

        var requestIds = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/traced/v1/messages")
            {
                Content = new StringContent($$"""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"{{bodyMarker}}"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", key);
            using var response = await gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            requestIds.Add(response.Headers.GetValues("request-id").Single());
        }

        await gateway.StopAsync();

        var traces = receiver.Text("/v1/traces");
        var metrics = receiver.Text("/v1/metrics");
        Assert.True(traces.Length > 0, "no spans arrived at /v1/traces; the gateway logged:\n" + gateway.Log);
        Assert.True(metrics.Length > 0, "no metrics arrived at /v1/metrics; the gateway logged:\n" + gateway.Log);
        foreach (var span in new[] { "latchkey.request", "latchkey.client_key.check", "latchkey.token_engine", "latchkey.upstream" })
        {
            Assert.Contains(span, traces, StringComparison.Ordinal);
        }

        foreach (var id in requestIds)
        {
            Assert.Contains(id, traces, StringComparison.Ordinal); // the upstream's request id, as an attribute
        }

        Assert.Contains("traced-agent", traces, StringComparison.Ordinal); // the key's name
        Assert.Contains("latchkey.gateway.requests", metrics, StringComparison.Ordinal);
        foreach (var (what, value) in new[] { ("the credential's secret", secret), ("the client key", key), ("the body", bodyMarker) })
        {
            Assert.False(traces.Contains(value, StringComparison.Ordinal), $"{what} was exported in a span");
            Assert.False(metrics.Contains(value, StringComparison.Ordinal), $"{what} was exported in a metric");
        }
    }

    [Fact]
    public async Task Serve_NoOtlpEndpointSet_NothingIsSentEvenToTheExportersDefaultEndpoint()
    {
        // The OTLP/HTTP exporter's default endpoint is http://localhost:4318: listen there, so an exporter that was
        // added without an endpoint would be caught sending.
        await using var receiver = await OtlpReceiver.StartAsync(4318);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        var environment = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = string.Empty,
            ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = string.Empty,
            ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = string.Empty,
        };
        await using var gateway = await GatewayProcess.StartAsync(null, environment);
        await gateway.AddApiKeyAsync("quiet", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("quiet-agent", "quiet");
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/c/quiet/v1/models"))
        {
            request.Headers.Add("x-api-key", key);
            using var response = await gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The request was measured (so there was something to send) ...
        var scrape = await RealTime.UntilAsync(() => gateway.Http.GetStringAsync("/metrics"),
            text => MetricsText.Value(text, "latchkey_gateway_requests_total", ("credential", "quiet")) >= 1, TimeSpan.FromSeconds(10));
        Assert.Equal(1, MetricsText.Value(scrape, "latchkey_gateway_requests_total", ("credential", "quiet")));

        // ... and after a clean stop, which sends whatever an exporter holds, nothing was sent anywhere.
        await gateway.StopAsync();
        Assert.Empty(receiver.Received);
    }
}
