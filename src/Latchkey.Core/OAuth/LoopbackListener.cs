using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Latchkey.OAuth;

/// <summary>
/// The RFC 8252 redirect listener: 127.0.0.1 on an ephemeral port, one GET of <c>/callback</c> wanted. Answers
/// every request with a plain page and hands the callback's query to the sign-in; other paths get 404.
/// </summary>
internal sealed class LoopbackListener : IDisposable
{
    private const int MaxRequestBytes = 16 * 1024;
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

    public LoopbackListener()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
    }

    public int Port { get; }

    public string RedirectUri => $"http://127.0.0.1:{Port}/callback";

    /// <summary>Waits for the callback, then answers it with the page <paramref name="respond"/> builds from its query.</summary>
    public async Task<IReadOnlyDictionary<string, string>> WaitForCallbackAsync(Func<IReadOnlyDictionary<string, string>, (bool Ok, string Message)> respond, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(respond);
        while (true)
        {
            using var client = await _listener.AcceptTcpClientAsync(ct).ConfigureAwait(false);
            await using var stream = client.GetStream();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            string requestLine;
            try
            {
                requestLine = await ReadRequestHeadAsync(stream, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidDataException && !ct.IsCancellationRequested)
            {
                continue;
            }

            var parts = requestLine.Split(' ');
            if (parts.Length != 3 || parts[0] != "GET" || !Uri.TryCreate("http://127.0.0.1" + parts[1], UriKind.Absolute, out var url) || url.AbsolutePath != "/callback")
            {
                await WriteAsync(stream, 404, "Not found", "This is Latchkey's sign-in listener; it only answers the sign-in redirect.", ct).ConfigureAwait(false);
                continue;
            }

            var query = ParseQuery(url.Query);
            var (ok, message) = respond(query);
            await WriteAsync(stream, ok ? 200 : 400, ok ? "Signed in" : "Sign-in failed", message, ct).ConfigureAwait(false);
            return query;
        }
    }

    public void Dispose() => _listener.Dispose();

    internal static Dictionary<string, string> ParseQuery(string query)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString((eq < 0 ? pair : pair[..eq]).Replace('+', ' '));
            var value = eq < 0 ? string.Empty : Uri.UnescapeDataString(pair[(eq + 1)..].Replace('+', ' '));
            result.TryAdd(key, value); // a repeated parameter keeps its first value
        }

        return result;
    }

    private static async Task<string> ReadRequestHeadAsync(NetworkStream stream, CancellationToken ct)
    {
        var buffer = new byte[MaxRequestBytes];
        var total = 0;
        while (total < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            total += read;
            if (buffer.AsSpan(0, total).IndexOf("\r\n\r\n"u8) >= 0)
            {
                break;
            }
        }

        var head = Encoding.ASCII.GetString(buffer, 0, total);
        var end = head.IndexOf("\r\n", StringComparison.Ordinal);
        return end < 0 ? throw new InvalidDataException("no request line") : head[..end];
    }

    private static async Task WriteAsync(NetworkStream stream, int status, string title, string message, CancellationToken ct)
    {
        var html = $"<!doctype html><html><head><meta charset=\"utf-8\"><title>Latchkey: {WebUtility.HtmlEncode(title)}</title></head>" +
                   $"<body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:4em auto\"><h1>{WebUtility.HtmlEncode(title)}</h1><p>{WebUtility.HtmlEncode(message)}</p></body></html>";
        var body = Encoding.UTF8.GetBytes(html);
        var head = Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {(status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request")}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {body.Length}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(head, ct).ConfigureAwait(false);
        await stream.WriteAsync(body, ct).ConfigureAwait(false);
    }
}
