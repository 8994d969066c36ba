using System.Net.Sockets;
using System.Text;

namespace Latchkey.Tests.Security;

/// <summary>An HTTP/1.1 answer read off a raw socket: status, headers (names case-insensitive) and body.</summary>
internal sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>
/// Sends exactly the bytes a test writes over a TCP socket and reads the whole answer (the request asks for
/// <c>Connection: close</c>). HTTP client libraries normalise request targets and refuse odd methods, so attacks
/// on the request line go through here.
/// </summary>
internal static class RawHttp
{
    /// <summary>Sends <c>METHOD TARGET HTTP/1.1</c> with a Host (the gateway's, unless a <c>Host:</c> line is given),
    /// the given header lines and <c>Connection: close</c>.</summary>
    public static Task<RawResponse> SendAsync(string baseUrl, string method, string target, params string[] headers) =>
        SendRawAsync(baseUrl, Request(baseUrl, method, target, headers, null));

    /// <summary>The same with a body (and its <c>Content-Length</c>).</summary>
    public static Task<RawResponse> SendWithBodyAsync(string baseUrl, string method, string target, string body, params string[] headers) =>
        SendRawAsync(baseUrl, Request(baseUrl, method, target, headers, body));

    /// <summary>The same from a given local address (another address of 127.0.0.0/8 is another peer to the gateway).</summary>
    public static Task<RawResponse> SendFromAsync(System.Net.IPAddress from, string baseUrl, string method, string target, params string[] headers) =>
        SendRawAsync(baseUrl, Request(baseUrl, method, target, headers, null), from);

    public static async Task<RawResponse> SendRawAsync(string baseUrl, byte[] request, System.Net.IPAddress? from = null)
    {
        var uri = new Uri(baseUrl);
        using var tcp = from is null ? new TcpClient() : new TcpClient(new System.Net.IPEndPoint(from, 0));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await tcp.ConnectAsync(uri.Host, uri.Port, timeout.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request, timeout.Token);
        using var answer = new MemoryStream();
        try
        {
            await stream.CopyToAsync(answer, timeout.Token);
        }
        catch (IOException) when (answer.Length > 0)
        {
            // a reset after the answer: the server gave up on a request body the test never sent
        }

        return Parse(answer.ToArray());
    }

    private static byte[] Request(string baseUrl, string method, string target, string[] headers, string? body)
    {
        // The gateway's own Host, unless the caller sends one of its own (a page reached through DNS rebinding).
        var head = new StringBuilder($"{method} {target} HTTP/1.1\r\n");
        if (!headers.Any(h => h.StartsWith("Host:", StringComparison.OrdinalIgnoreCase)))
        {
            head.Append("Host: ").Append(new Uri(baseUrl).Authority).Append("\r\n");
        }

        foreach (var header in headers)
        {
            head.Append(header).Append("\r\n");
        }

        var content = Encoding.UTF8.GetBytes(body ?? string.Empty);
        if (body is not null)
        {
            head.Append("Content-Length: ").Append(content.Length).Append("\r\n");
        }

        head.Append("Connection: close\r\n\r\n");
        return [.. Encoding.ASCII.GetBytes(head.ToString()), .. content];
    }

    public static RawResponse Parse(byte[] bytes)
    {
        var end = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
        Assert.True(end > 0, $"no complete HTTP answer: {Encoding.UTF8.GetString(bytes)}");
        var lines = Encoding.ASCII.GetString(bytes, 0, end).Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var (name, value) = (line[..colon], line[(colon + 1)..].Trim());
            headers[name] = headers.TryGetValue(name, out var earlier) ? earlier + ", " + value : value;
        }

        var body = bytes.AsSpan(end + 4);
        if (headers.TryGetValue("Transfer-Encoding", out var coding) && coding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var joined = new MemoryStream();
            while (body.Length > 0)
            {
                var lineEnd = body.IndexOf("\r\n"u8);
                var size = Convert.ToInt32(Encoding.ASCII.GetString(body[..lineEnd]).Split(';')[0], 16);
                if (size == 0)
                {
                    break;
                }

                joined.Write(body.Slice(lineEnd + 2, size));
                body = body[(lineEnd + 2 + size + 2)..];
            }

            return new RawResponse(status, headers, Encoding.UTF8.GetString(joined.ToArray()));
        }

        return new RawResponse(status, headers, Encoding.UTF8.GetString(body));
    }
}
