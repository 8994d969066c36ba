using System.Net.Sockets;
using System.Text;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// An agent with a valid key that writes a header value holding NUL, a bare CR, a bare LF, or a folded line, hoping to
/// split the request the gateway sends upstream and smuggle a second one (with the injected credential) behind it.
/// The bytes go over a raw socket, as no HTTP client would send them. Kestrel's HTTP/1.1 parser (the gateway speaks
/// no cleartext HTTP/2) refuses every one of them with its own 400 before the gateway's code runs, on the TCP port
/// and the Unix socket alike, so the gateway's own <c>header_invalid</c> check is a second line that these bytes
/// cannot reach: nothing goes upstream, and the gateway serves the next request normally.
/// </summary>
public sealed class RawHeaderValueTests
{
    public static TheoryData<string, string> Attacks => new()
    {
        { "tcp", "x-smuggle: a\0b\r\n" },
        { "tcp", "x-smuggle: a\rGET /c/raw/v1/admin HTTP/1.1\r\n" },
        { "tcp", "x-smuggle: a\nGET /c/raw/v1/admin HTTP/1.1\r\n" },
        { "tcp", "x-smuggle: a\r\n GET /c/raw/v1/admin HTTP/1.1\r\n" },
        { "unix", "x-smuggle: a\0b\r\n" },
        { "unix", "x-smuggle: a\rGET /c/raw/v1/admin HTTP/1.1\r\n" },
        { "unix", "x-smuggle: a\nGET /c/raw/v1/admin HTTP/1.1\r\n" },
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public async Task Request_HeaderValueWithNulCrLfOrFold_RefusedBeforeTheGatewayNothingGoesUpstream(string transport, string header)
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("raw", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("agent", "raw");

        var refused = await SendRawAsync(gateway, transport, $"GET /c/raw/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\n{header}Connection: close\r\n\r\n");
        var normal = await SendRawAsync(gateway, transport, $"GET /c/raw/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nx-kept: a\tb\r\nConnection: close\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 400 ", refused, StringComparison.Ordinal);
        Assert.DoesNotContain("latchkey-diagnostic", refused, StringComparison.OrdinalIgnoreCase); // Kestrel's answer, not the gateway's
        Assert.StartsWith("HTTP/1.1 200 ", normal, StringComparison.Ordinal);
        var seen = Assert.Single(upstream.Requests); // only the normal request
        Assert.Equal("/v1/models", seen.PathAndQuery);
        Assert.Equal("a\tb", seen.Headers["x-kept"]);
    }

    private static async Task<string> SendRawAsync(GatewayProcess gateway, string transport, string request)
    {
        using var socket = transport == "unix"
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (transport == "unix")
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(gateway.HomePath, "gateway.sock")));
        }
        else
        {
            var url = new Uri(gateway.Url);
            await socket.ConnectAsync(url.Host, url.Port);
        }

        await socket.SendAsync(Encoding.Latin1.GetBytes(request));
        using var answer = new MemoryStream();
        var buffer = new byte[8192];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int read;
        while ((read = await socket.ReceiveAsync(buffer, timeout.Token)) > 0)
        {
            answer.Write(buffer, 0, read);
        }

        return Encoding.Latin1.GetString(answer.ToArray());
    }
}
