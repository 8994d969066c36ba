using Latchkey.Http;

namespace Latchkey.Tests.Http;

public sealed class UrlPolicyTests
{
    [Theory]
    [InlineData("https://api.anthropic.com")]
    [InlineData("https://api.example.com:8443/v1")]
    [InlineData("http://localhost:8080")]
    [InlineData("http://127.0.0.1:9000/x")]
    [InlineData("http://127.9.9.9")]
    [InlineData("http://[::1]:3000")]
    [InlineData("http://LOCALHOST:3000")]
    [InlineData("https://app.localhost")]
    public void TryParse_AllowedUrl_Accepted(string url)
    {
        Assert.True(UrlPolicy.TryParse(url, out var uri, out var problem), problem);
        Assert.NotNull(uri);
    }

    [Theory]
    [InlineData("http://api.example.com", "plain http")]
    [InlineData("http://10.0.0.1", "plain http")]
    [InlineData("http://localhost.evil.com", "plain http")]
    [InlineData("http://app.localhost", "plain http")] // resolved through DNS like any name: not this machine by its spelling
    [InlineData("http://zz.localhost:18081/sub", "plain http")]
    [InlineData("http://localhost.:8080", "plain http")]
    [InlineData("ftp://example.com", "scheme")]
    [InlineData("file:///etc/passwd", "scheme")]
    [InlineData("javascript:alert(1)", "scheme")]
    [InlineData("api.example.com", "not an absolute URL")]
    [InlineData("/.well-known/oauth-protected-resource", "not an absolute URL")]
    [InlineData("", "not an absolute URL")]
    [InlineData("https://user:pw@example.com", "user name")]
    [InlineData("https://example.com/#frag", "fragment")]
    public void TryParse_UnsafeUrl_RefusedNamingTheProblem(string url, string expected)
    {
        Assert.False(UrlPolicy.TryParse(url, out _, out var problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }
}

public sealed class UrlPolicyOptInTests
{
    [Theory]
    [InlineData("http://10.0.0.5:8000")]
    [InlineData("http://api.example.com/v1")]
    public void TryParse_PlainHttpToAnotherMachineWithTheOptIn_Accepted(string url)
    {
        Assert.True(UrlPolicy.TryParse(url, allowInsecureHttp: true, out var uri, out var problem), problem);
        Assert.True(UrlPolicy.NeedsInsecureOptIn(uri));
    }

    [Theory]
    [InlineData("ftp://example.com", "scheme")]
    [InlineData("http://user:pw@10.0.0.5", "user name")]
    [InlineData("http://10.0.0.5/#x", "fragment")]
    public void TryParse_TheOptIn_AllowsNothingButPlainHttp(string url, string expected)
    {
        Assert.False(UrlPolicy.TryParse(url, allowInsecureHttp: true, out _, out var problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_AnHttpsUrlOnTheHotPath_AllocatesNothing()
    {
        var uri = new Uri("https://api.anthropic.com/v1/messages?beta=true");
        Assert.Equal(UrlVerdict.Allowed, UrlPolicy.Check(uri, allowInsecureHttp: false)); // warm up Uri's caches

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            UrlPolicy.Check(uri, allowInsecureHttp: false);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}

/// <summary>
/// The connect-time check: a plain-http connection to <c>localhost</c> is made only when every address the name
/// resolves to is loopback. The resolution is given by the test (pointing <c>localhost</c> elsewhere on the machine
/// itself would break every other program); the sockets and the listener are real.
/// </summary>
public sealed class UrlPolicyConnectTests
{
    [Theory]
    [InlineData("10.1.2.3")]
    [InlineData("127.0.0.1,10.1.2.3")] // every address must be loopback, not just the first
    [InlineData("::1,2001:db8::1")]
    [InlineData("")]
    public async Task ConnectAsync_LocalhostResolvingElsewhere_RefusedAndNothingConnected(string resolved)
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var addresses = resolved.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(System.Net.IPAddress.Parse).ToArray();

        var refused = await Assert.ThrowsAsync<UrlRefusedException>(async () =>
            await UrlPolicy.ConnectAsync(new System.Net.DnsEndPoint("localhost", port), new Uri($"http://localhost:{port}/v1"), (_, _) => Task.FromResult(addresses), default));

        Assert.Equal(UrlVerdict.NotLoopback, refused.Verdict);
        Assert.Contains("not loopback", refused.Problem, StringComparison.Ordinal);
        Assert.False(listener.Pending());
    }

    [Theory]
    [InlineData("http", "localhost", "127.0.0.1", true)]
    [InlineData("http", "localhost", "127.0.0.1,::1", true)]
    [InlineData("http", "127.0.0.1", "", false)] // a literal address is not resolved
    [InlineData("https", "localhost", "", false)] // https: the certificate names the server; not resolved here
    public async Task ConnectAsync_LoopbackOrHttps_ConnectsAsUsual(string scheme, string host, string resolved, bool resolves)
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var asked = 0;

        await using var stream = await UrlPolicy.ConnectAsync(new System.Net.DnsEndPoint(host, port), new Uri($"{scheme}://{host}:{port}/"),
            (_, _) =>
            {
                asked++;
                return Task.FromResult(resolved.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(System.Net.IPAddress.Parse).ToArray());
            }, default);

        using var accepted = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(accepted.Connected);
        Assert.Equal(resolves ? 1 : 0, asked);
    }
}

/// <summary>The send-time check every credential-carrying request passes, with a handler that records what reached it.</summary>
public sealed class UrlPolicyHandlerTests
{
    [Theory]
    [InlineData("http://10.0.0.5:8000/v1/messages")]
    [InlineData("http://api.example.com/")]
    [InlineData("ftp://example.com/")]
    public async Task Send_UrlTheCredentialMayNotGoTo_RefusedAndNothingReachesTheNetwork(string url)
    {
        var network = new Recorder();
        using var client = new HttpMessageInvoker(new UrlPolicyHandler(network));
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.TryAddWithoutValidation("x-api-key", "sk-secret");

        var refused = await Assert.ThrowsAsync<UrlRefusedException>(() => client.SendAsync(request, default));

        Assert.Empty(network.Seen);
        Assert.Contains(new Uri(url).GetLeftPart(UriPartial.Authority), refused.Problem, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-secret", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://api.anthropic.com/v1/messages", false)]
    [InlineData("http://127.0.0.1:9/x", false)]
    [InlineData("http://localhost:8080/x", false)]
    [InlineData("http://10.0.0.5:8000/v1/messages", true)]
    public async Task Send_AllowedUrlOrRecordedOptIn_Sent(string url, bool optIn)
    {
        var network = new Recorder();
        using var client = new HttpMessageInvoker(new UrlPolicyHandler(network));
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        UrlPolicyHandler.PermitInsecureHttp(request, optIn);

        using var response = await client.SendAsync(request, default);

        Assert.Equal(url, Assert.Single(network.Seen).ToString());
    }

    [Fact]
    public async Task Send_OptInFalse_DoesNotLetPlainHttpThrough()
    {
        var network = new Recorder();
        using var client = new HttpMessageInvoker(new UrlPolicyHandler(network));
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://10.0.0.5/");
        UrlPolicyHandler.PermitInsecureHttp(request, allowed: false);

        await Assert.ThrowsAsync<UrlRefusedException>(() => client.SendAsync(request, default));

        Assert.Empty(network.Seen);
    }

    private sealed class Recorder : HttpMessageHandler
    {
        public System.Collections.Concurrent.ConcurrentQueue<Uri> Seen { get; } = new();

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Seen.Enqueue(request.RequestUri!);
            return Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.OK));
        }
    }
}
