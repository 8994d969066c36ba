using System.Net;
using System.Net.Sockets;
using System.Text;
using Latchkey.Gateway;
using Latchkey.Http;
using Latchkey.UpstreamSim;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// A real gateway process with a one-second idle limit on body copies, in front of a simulated upstream whose
/// answers the tests write themselves (an answer that stops halfway).
/// </summary>
public sealed class ForwarderBodyFixture : IAsyncLifetime
{
    internal SimulatedUpstream Upstream { get; } = new();

    internal GatewayProcess Gateway { get; private set; } = null!;

    internal string Key { get; private set; } = string.Empty;

    internal string Secret { get; } = "sk-ant-api03-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        Upstream.Behaviour.Respond = RespondAsync;
        await Upstream.StartAsync();
        Gateway = await GatewayProcess.StartAsync(null, "--upstream-timeout", "10s", "--idle-timeout", "1s");
        await Gateway.AddApiKeyAsync("body", Upstream.Url, Secret, "--header", "x-api-key", "--format", "{secret}");
        Key = await Gateway.CreateKeyAsync("body-key", "body");
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
    }

    private static async Task RespondAsync(HttpContext context)
    {
        var response = context.Response;
        switch (context.Request.Path.Value)
        {
            case "/stalls":
                // One event, then nothing: the upstream stays connected but idle.
                response.ContentType = "text/event-stream";
                await response.WriteAsync("data: first\n\n", context.RequestAborted);
                await response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
            default:
                await response.WriteAsync("ok", context.RequestAborted);
                return;
        }
    }
}

public sealed class ForwarderBodyTests(ForwarderBodyFixture fixture) : IClassFixture<ForwarderBodyFixture>
{
    private GatewayProcess Gateway => fixture.Gateway;

    [Fact]
    public async Task CopyResponse_UpstreamIdleMidBody_AbortsAfterTheIdleLimitAndRecordsUpstreamIdle()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/c/body/stalls");
        request.Headers.Add("x-api-key", fixture.Key);

        using var response = await Gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        var first = await body.ReadAsync(buffer);
        Assert.Equal("data: first\n\n", Encoding.UTF8.GetString(buffer, 0, first));

        // The rest never comes: after the idle limit the gateway aborts the agent's connection, so the answer ends
        // in an error, not in a clean end of stream that would look complete.
        await Assert.ThrowsAnyAsync<IOException>(async () => await body.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await RealTime.UntilAsync(
            async () => (await Gateway.Cli(null, "audit", "--json", "--credential", "body")).Stdout.Contains("upstream_idle", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15)), Gateway.Log);
        Assert.Contains("cut short (upstream_idle)", Gateway.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendAsync_AgentBodyStopsArriving_Answers408AgentIdle()
    {
        var answer = await RawAsync($"POST /c/body/echo HTTP/1.1\r\nHost: gateway\r\nx-api-key: {fixture.Key}\r\nContent-Length: 100\r\n\r\n0123456789");

        Assert.StartsWith("HTTP/1.1 408", answer, StringComparison.Ordinal);
        Assert.Contains("latchkey-diagnostic: agent_idle", answer, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(fixture.Secret, Gateway.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendAsync_AgentBodyMalformed_Answers400AgentBodyBroken()
    {
        var answer = await RawAsync($"POST /c/body/echo HTTP/1.1\r\nHost: gateway\r\nx-api-key: {fixture.Key}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n");

        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        Assert.Contains("latchkey-diagnostic: agent_body_broken", answer, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task CopyResponse_UpstreamSendsTrailersToAnHttp11Agent_BodyArrivesWhole()
    {
        // Kestrel carries response trailers over HTTP/2 only, and agents reach the gateway over HTTP/1.1: the
        // upstream's trailers are read to the end (they end its body) and the answer arrives whole.
        await using var upstream = await TrailersUpstream.StartAsync();
        await Gateway.AddApiKeyAsync("trailers", upstream.Url, fixture.Secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await Gateway.CreateKeyAsync("trailers-key", "trailers");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/c/trailers/grpc-like");
        request.Headers.Add("x-api-key", key);

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        Assert.Equal("trailers", response.Headers.GetValues("latchkey-credential").Single());
    }

    /// <summary>Writes <paramref name="request"/> as it is and reads the answer's status line and headers.</summary>
    private async Task<string> RawAsync(string request)
    {
        var uri = new Uri(Gateway.Url);
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        await using var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var received = new StringBuilder();
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, deadline.Token);
            if (n == 0)
            {
                break;
            }

            received.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        return received.ToString();
    }
}

/// <summary>The forwarder in the process, between a real upstream that sends trailers and an agent whose protocol
/// carries them (as HTTP/2 does).</summary>
public sealed class ForwarderTrailersTests
{
    [Fact]
    public async Task CopyResponse_UpstreamSendsTrailers_CopiedToAnAgentThatCarriesThemButNoLatchkeyOnes()
    {
        await using var upstream = await TrailersUpstream.StartAsync();
        using var invoker = new HttpMessageInvoker(HttpHandlerFactory.CreateChecked(HttpPurpose.Forwarding));
        var forwarder = new Forwarder(invoker, new GatewayOptions(), TimeProvider.System);
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        var body = new MemoryStream();
        context.Response.Body = body;
        var trailers = new TrailersFeature();
        context.Features.Set<IHttpResponseTrailersFeature>(trailers);

        var (response, error, _) = await forwarder.SendAsync(context, new Uri(upstream.Url + "/grpc-like"), RequestBody.None, new HashSet<string>(), _ => { });
        using (response)
        {
            Assert.Equal(ForwarderError.None, error);
            Assert.Equal(ForwarderError.None, await forwarder.CopyResponseAsync(context, response!, []));
        }

        Assert.Equal("hello", Encoding.UTF8.GetString(body.ToArray()));
        Assert.Equal("sha256-abc", trailers.Trailers["x-checksum"].ToString());
        Assert.False(trailers.Trailers.ContainsKey("latchkey-credential"));
    }

    private sealed class TrailersFeature : IHttpResponseTrailersFeature
    {
        public IHeaderDictionary Trailers { get; set; } = new HeaderDictionary();
    }
}

/// <summary>A real HTTP/1.1 upstream on a loopback socket that answers every request with a chunked body
/// ("hello") and two trailers: <c>x-checksum</c> and a forged <c>latchkey-credential</c>.</summary>
internal sealed class TrailersUpstream : IAsyncDisposable
{
    private const string Answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: close\r\n\r\n"
        + "5\r\nhello\r\n0\r\nx-checksum: sha256-abc\r\nlatchkey-credential: forged\r\n\r\n";

    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private TrailersUpstream(TcpListener listener)
    {
        _listener = listener;
        _loop = AcceptAsync();
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public static Task<TrailersUpstream> StartAsync()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return Task.FromResult(new TrailersUpstream(listener));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            await using var stream = client.GetStream();
            var received = new StringBuilder();
            var buffer = new byte[4096];
            while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await stream.ReadAsync(buffer, _stop.Token);
                if (n == 0)
                {
                    break;
                }

                received.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes(Answer), _stop.Token);
        }
    }
}
