using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// A caller without a key holds gateway connections open by trickling a request body in, one byte a second, to an
/// endpoint that reads the body before anyone is authenticated (the dashboard's sign-in form). Kestrel's minimum
/// request-body data rate (240 bytes/s after a 5 s grace) cuts such a connection off; an agent whose key has passed
/// may still stream a body at its own pace.
/// </summary>
/// <remarks>
/// The clock here is Kestrel's own (its heartbeat checks the rate once a second in the gateway process), so the test
/// runs in real time, bounded: the connection must be gone 12 s after the body started (5 s grace, the heartbeat,
/// scheduling slack); the test gives up at 20 s.
/// </remarks>
public sealed class SlowBodyTests
{
    [Fact]
    public async Task Post_UnauthenticatedBodyAtOneBytePerSecond_ConnectionDroppedAfterTheGracePeriod()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        var uri = new Uri(gateway.Url);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /ui/session HTTP/1.1\r\nHost: {uri.Authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"));
        var watch = Stopwatch.StartNew();
        var closed = DrainAsync(stream);

        while (!closed.IsCompleted && watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            try
            {
                await stream.WriteAsync("a"u8.ToArray());
            }
            catch (IOException)
            {
                break; // the gateway has closed the connection
            }

            await Task.WhenAny(closed, RealTime.ForAsync(TimeSpan.FromSeconds(1))); // the pace is the attack: one byte per real second
        }

        Assert.True(closed.IsCompleted, $"the connection was still open after {watch.Elapsed.TotalSeconds:0} s of a body at 1 byte/s");
        var at = await closed;
        Assert.True(at < TimeSpan.FromSeconds(12), $"dropped only after {at.TotalSeconds:0.0} s");
        Assert.True(at > TimeSpan.FromSeconds(4), $"dropped after {at.TotalSeconds:0.0} s, before the grace period was over");

        async Task<TimeSpan> DrainAsync(NetworkStream s)
        {
            var buffer = new byte[4096];
            try
            {
                while (await s.ReadAsync(buffer) > 0)
                {
                }
            }
            catch (IOException)
            {
            }

            return watch.Elapsed;
        }
    }

    [Fact]
    public async Task Forward_AuthorizedBodyAtOneBytePerSecond_IsStreamedThrough()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("slow", upstream.Url, "sk-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("slow-key", "slow");
        var uri = new Uri(gateway.Url);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        const int length = 8; // 8 s at 1 byte/s: past the grace period and the heartbeat that would cut an unauthenticated body
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /c/slow/echo/upload HTTP/1.1\r\nHost: {uri.Authority}\r\nx-api-key: {key}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"));
        for (var i = 0; i < length; i++)
        {
            await RealTime.ForAsync(TimeSpan.FromSeconds(1)); // one byte per real second, as the gateway's timers see it
            await stream.WriteAsync("b"u8.ToArray());
        }

        using var answer = new MemoryStream();
        await stream.CopyToAsync(answer).WaitAsync(TimeSpan.FromSeconds(30));
        var response = Security.RawHttp.Parse(answer.ToArray());

        Assert.True(response.Status == 200, $"{response.Status} {response.Body}");
        Assert.Equal(length, (int)JsonNode.Parse(response.Body)!["body_length"]!);
    }
}
