namespace Latchkey.Tests.Security.BrowserPage;

/// <summary>
/// A web page whose own host name it rebinds to 127.0.0.1 asks the gateway for <c>/metrics</c>: the browser sends the
/// page's <c>Host</c>, and the answer would tell the page which credentials and client keys exist and how much each
/// is used. Without a metrics key the gateway answers <c>/metrics</c> only under this machine's own address, in every
/// spelling of the path routing accepts. Sent byte for byte over a raw socket, so no client normalises the path.
/// </summary>
public sealed class MetricsRebindingTests(OneGateway fixture) : IClassFixture<OneGateway>
{
    private readonly GatewayProcess _gateway = fixture.Gateway;

    [Theory]
    [InlineData("/metrics")]
    [InlineData("/METRICS")]
    [InlineData("/Metrics")]
    [InlineData("/%6detrics")]
    [InlineData("/./metrics")]
    [InlineData("/metrics/")]
    [InlineData("/metrics?format=prometheus")]
    public async Task Metrics_ForeignHostHeaderAnySpelling_RefusedWithNoMetric(string target)
    {
        var own = await RawHttp.SendAsync(_gateway.Url, "GET", "/metrics");
        var rebound = await RawHttp.SendAsync(_gateway.Url, "GET", target, "Host: attacker.example:" + new Uri(_gateway.Url).Port);

        Assert.Equal(200, own.Status); // this machine's own address still gets it
        Assert.Contains("target_info", own.Body, StringComparison.Ordinal);
        Assert.True(rebound.Status is 403 or 404, $"GET {target} with a foreign Host answered {rebound.Status}");
        Assert.DoesNotContain("target_info", rebound.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("latchkey_", rebound.Body, StringComparison.Ordinal);
    }
}
