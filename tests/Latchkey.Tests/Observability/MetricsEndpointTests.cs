using System.Net;
using System.Text.Json;

namespace Latchkey.Tests.Observability;

/// <summary>
/// <c>/metrics</c> on a real <c>latchkey serve</c>: what it counts, and the metrics key that opens it to a team's
/// scraper (from a file, never the command line); the attacks on it are in Security/.
/// </summary>
public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Metrics_AfterServedAndRefusedRequests_CountsByRouteCredentialKeyNameAndStatus()
    {
        await using var upstream = new UpstreamSim.SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("counted", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("counted-agent", "counted");
        await gateway.CreateKeyAsync("other-agent", "somewhere-else");
        var other = await gateway.CreateKeyAsync("wrong-agent", "somewhere-else");

        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await SendAsync(gateway, "/c/counted/v1/models", key));
        }

        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(gateway, "/c/counted/v1/models", other));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(gateway, "/c/made-up-name/v1/models", null));

        var text = await RealTime.UntilAsync(() => gateway.Http.GetStringAsync("/metrics"),
            t => MetricsText.Value(t, "latchkey_gateway_requests_total") >= 4, TimeSpan.FromSeconds(10));

        Assert.Equal(2, MetricsText.Value(text, "latchkey_gateway_requests_total", ("route", "/c/counted"), ("credential", "counted"), ("client_key", "counted-agent"), ("status", "200")));
        // Refused before a key allowed the name: the key's name is known, the route is only its prefix.
        Assert.Equal(1, MetricsText.Value(text, "latchkey_gateway_requests_total", ("route", "/c"), ("credential", ""), ("client_key", "wrong-agent"), ("status", "403")));
        Assert.Equal(1, MetricsText.Value(text, "latchkey_gateway_requests_total", ("route", "/c"), ("client_key", ""), ("status", "401")));
        Assert.DoesNotContain("made-up-name", text, StringComparison.Ordinal);
        Assert.Equal(1, MetricsText.Value(text, "latchkey_client_key_refusals_total", ("reason", "client_key_not_allowed")));
        Assert.Equal(1, MetricsText.Value(text, "latchkey_client_key_refusals_total", ("reason", "client_key_missing")));
        Assert.Equal(2, MetricsText.Value(text, "latchkey_upstream_duration_seconds_count", ("credential", "counted"), ("status", "200")));
        Assert.Equal(2, MetricsText.Value(text, "latchkey_upstream_time_to_first_byte_seconds_count", ("credential", "counted")));
        Assert.True(MetricsText.Value(text, "latchkey_store_operation_duration_seconds_count", ("backend", "sqlite"), ("operation", "verify_key")) >= 1);
        Assert.Contains("latchkey_audit_queue_depth", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_WithMetricsKeyFile_OnlyTheKeyOpensItEvenOnLoopback()
    {
        using var home = new TempHome();
        var keyFile = Path.Combine(home.Root, "metrics.key");
        var metricsKey = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await File.WriteAllTextAsync(keyFile, metricsKey + "\n");
        await using var gateway = await GatewayProcess.StartAsync(home, "--metrics-key-file", keyFile);

        foreach (var (authorization, code) in new[] { ((string?)null, "metrics_key_missing"), ("Bearer " + metricsKey[..^1] + (metricsKey[^1] == '0' ? "1" : "0"), "metrics_key_invalid"), ("Basic " + metricsKey, "metrics_key_missing") })
        {
            using var refused = await ScrapeAsync(gateway, authorization);
            var body = await refused.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal(code, JsonDocument.Parse(body).RootElement.GetProperty("latchkey").GetProperty("reason").GetString());
            Assert.Contains("Bearer", refused.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain("latchkey_", body, StringComparison.Ordinal);
        }

        using var scraped = await ScrapeAsync(gateway, "Bearer " + metricsKey);
        Assert.Equal(HttpStatusCode.OK, scraped.StatusCode);
        Assert.Contains("target_info", await scraped.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(metricsKey, gateway.Log, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("short-key")]
    [InlineData("a key with spaces in it that is long enough to pass")]
    [InlineData(null)]
    public async Task Serve_MetricsKeyFileMissingOrUnusable_RefusedAtStartNamingTheFile(string? contents)
    {
        using var home = new TempHome();
        var keyFile = Path.Combine(home.Root, "metrics.key");
        if (contents is not null)
        {
            await File.WriteAllTextAsync(keyFile, contents);
        }

        var result = await Processes.Latchkey(home.Path, null, "serve", "--listen", "127.0.0.1:0", "--no-socket", "--metrics-key-file", keyFile);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(keyFile, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("openssl rand -hex 32", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Latchkey gateway on", result.Stdout, StringComparison.Ordinal);
    }

    private static async Task<HttpStatusCode> SendAsync(GatewayProcess gateway, string path, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (key is not null)
        {
            request.Headers.Add("x-api-key", key);
        }

        using var response = await gateway.Http.SendAsync(request);
        return response.StatusCode;
    }

    private static async Task<HttpResponseMessage> ScrapeAsync(GatewayProcess gateway, string? authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await gateway.Http.SendAsync(request);
    }
}
