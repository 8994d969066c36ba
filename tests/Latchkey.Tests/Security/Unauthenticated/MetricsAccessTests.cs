using System.Net;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// A caller on another machine reaches a team gateway (<c>--allow-remote</c>) and asks for <c>/metrics</c>, which
/// names every credential and client key in use and how much each is used. Without a metrics key the gateway answers
/// only this machine (403 to everyone else); with one, only a request carrying it (401 otherwise), in every spelling
/// of the path. The gateway listens on this machine's non-loopback address, so the test's requests arrive from a
/// non-loopback peer, as another machine's would.
/// </summary>
public sealed class MetricsAccessTests
{
    public static TheoryData<string> Spellings => new() { "/metrics", "/METRICS", "/%6detrics", "/metrics/" };

    [Theory]
    [MemberData(nameof(Spellings))]
    public async Task Metrics_NonLoopbackPeerWithoutMetricsKeyConfigured_403AndNoMetric(string target)
    {
        await using var gateway = await StartRemoteAsync();
        await gateway.AddApiKeyAsync("team-api", "https://api.example.com", "sk-REMOTE-" + Guid.NewGuid().ToString("N"));
        await gateway.CreateKeyAsync("team-agent", "team-api");

        var answer = await RawHttp.SendAsync(gateway.Url, "GET", target);

        Assert.True(answer.Status is 403 or 404, $"GET {target} from a non-loopback peer answered {answer.Status}");
        Assert.DoesNotContain("latchkey_", answer.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("team-agent", answer.Body, StringComparison.Ordinal);
        if (target == "/metrics")
        {
            Assert.Equal(403, answer.Status);
            Assert.StartsWith("metrics_not_local;", answer.Header("latchkey-diagnostic"), StringComparison.Ordinal);
            Assert.Contains("--metrics-key-file", answer.Body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Metrics_NonLoopbackPeerWithMetricsKeyConfigured_401WithoutOrWithWrongKeyAndOnlyTheKeyScrapes()
    {
        using var home = new TempHome();
        var keyFile = Path.Combine(home.Root, "metrics.key");
        var metricsKey = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await File.WriteAllTextAsync(keyFile, metricsKey);
        await using var gateway = await StartRemoteAsync(home, "--metrics-key-file", keyFile);

        var none = await RawHttp.SendAsync(gateway.Url, "GET", "/metrics");
        var wrong = await RawHttp.SendAsync(gateway.Url, "GET", "/metrics", "Authorization: Bearer " + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        var prefix = await RawHttp.SendAsync(gateway.Url, "GET", "/METRICS", "Authorization: Bearer " + metricsKey[..40]);
        var right = await RawHttp.SendAsync(gateway.Url, "GET", "/metrics", "Authorization: Bearer " + metricsKey);

        foreach (var refused in new[] { none, wrong, prefix })
        {
            Assert.Equal(401, refused.Status);
            Assert.DoesNotContain("latchkey_", refused.Body, StringComparison.Ordinal);
            Assert.DoesNotContain("target_info", refused.Body, StringComparison.Ordinal);
        }

        Assert.Equal(200, right.Status);
        Assert.Contains("target_info", right.Body, StringComparison.Ordinal);
    }

    /// <summary>A gateway on this machine's non-loopback address (a team gateway, as another machine reaches it).</summary>
    private static Task<GatewayProcess> StartRemoteAsync(TempHome? home = null, params string[] extraArgs)
    {
        var address = SecurityWorld.NonLoopbackAddress();
        Assert.False(address.Equals(IPAddress.Any), "this machine has no non-loopback IPv4 address to listen on");
        return GatewayProcess.StartListeningAsync(address + ":0", home, new Dictionary<string, string>(), ["--allow-remote", .. extraArgs]);
    }
}
