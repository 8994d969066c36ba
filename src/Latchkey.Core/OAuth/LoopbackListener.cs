using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Latchkey.OAuth;

/// <summary>
/// The RFC 8252 redirect listener: 127.0.0.1 on an ephemeral port, one GET of <c>/callback</c> wanted. Answers
/// every request with a plain page and hands the callback's query to the sign-in; other paths get 404.
/// </summary>
/// <remarks>
/// <para><b>Security.</b> Any process on this machine can reach the port. A request the sign-in does not recognise
/// as its answer (<see cref="CallbackVerdict.Ignore"/>: a wrong or missing <c>state</c>) is answered, noted on
/// <c>notices</c> and forgotten; the listener goes on waiting for the real one until the sign-in's timeout. Requests
/// are served side by side (up to <see cref="MaxConnections"/> at once, each given 10 s to send its head), so a
/// connection that sends nothing does not hold the browser's back. The query (it holds the authorization code) is
/// never written anywhere.</para>
/// </remarks>
internal sealed class LoopbackListener(TextWriter? notices = null) : IDisposable
{
    private const int MaxRequestBytes = 16 * 1024;
    private const int MaxConnections = 32;
    private readonly TcpListener _listener = Start();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string RedirectUri => $"http://127.0.0.1:{Port}/callback";

    /// <summary>Waits for the callback <paramref name="respond"/> accepts or refuses, answering every request with
    /// the page it describes, and returns that callback's query. Requests it ignores do not end the wait.</summary>
    public async Task<IReadOnlyDictionary<string, string>> WaitForCallbackAsync(Func<IReadOnlyDictionary<string, string>, CallbackAnswer> respond, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(respond);
        var wait = new Wait(respond, notices);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var slots = new SemaphoreSlim(MaxConnections);
        var connections = new List<Task>();
        var accepting = AcceptAsync(wait, slots, connections, stop.Token);
        try
        {
            return await wait.Outcome.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            Task[] open;
            lock (connections)
            {
                open = [.. connections];
            }

            await Task.WhenAll(open).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
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

    private static TcpListener Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return listener;
    }

    private async Task AcceptAsync(Wait wait, SemaphoreSlim slots, List<Task> connections, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await slots.WaitAsync(ct).ConfigureAwait(false);
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(ct).ConfigureAwait(false);
            }
            catch (SocketException) when (!ct.IsCancellationRequested)
            {
                slots.Release();
                await Task.Delay(50, ct).ConfigureAwait(false); // out of descriptors, say: try again shortly
                continue;
            }

            var served = ServeAsync(client, wait, slots, ct);
            lock (connections)
            {
                connections.RemoveAll(c => c.IsCompleted);
                connections.Add(served);
            }
        }
    }

    private static async Task ServeAsync(TcpClient client, Wait wait, SemaphoreSlim slots, CancellationToken ct)
    {
        using var slot = new SlotRelease(slots);
        using (client)
        {
            try
            {
                await using var stream = client.GetStream();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                var requestLine = await ReadRequestHeadAsync(stream, timeout.Token).ConfigureAwait(false);
                var parts = requestLine.Split(' ');
                if (parts.Length != 3 || parts[0] != "GET" || !Uri.TryCreate("http://127.0.0.1" + parts[1], UriKind.Absolute, out var url) || url.AbsolutePath != "/callback")
                {
                    await WriteAsync(stream, 404, "Not found", "This is Latchkey's sign-in listener; it only answers the sign-in redirect.", timeout.Token).ConfigureAwait(false);
                    return;
                }

                var query = ParseQuery(url.Query);
                var answer = wait.Judge(query);
                var (status, title) = answer.Verdict switch
                {
                    CallbackVerdict.Accept => (200, "Signed in"),
                    CallbackVerdict.Refuse => (400, "Sign-in failed"),
                    _ => (400, "Not this sign-in"),
                };
                try
                {
                    await WriteAsync(stream, status, title, answer.Message, timeout.Token).ConfigureAwait(false);
                }
                finally
                {
                    if (answer.Verdict != CallbackVerdict.Ignore)
                    {
                        wait.Outcome.TrySetResult(query); // after the page is written: the caller stops the listener then
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidDataException or SocketException)
            {
                // a client that went away, sent nothing in time, or was cut off when the sign-in ended
            }
        }
    }

    /// <summary>Gives a connection's slot back when it is done.</summary>
    private readonly struct SlotRelease(SemaphoreSlim slots) : IDisposable
    {
        public void Dispose() => slots.Release();
    }

    /// <summary>One wait's judgement: requests are judged one at a time, and only the first accepted or refused one
    /// decides; later ones are ignored.</summary>
    private sealed class Wait(Func<IReadOnlyDictionary<string, string>, CallbackAnswer> respond, TextWriter? notices)
    {
        private readonly Lock _lock = new();
        private bool _decided;

        public TaskCompletionSource<IReadOnlyDictionary<string, string>> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public CallbackAnswer Judge(IReadOnlyDictionary<string, string> query)
        {
            lock (_lock)
            {
                var answer = _decided
                    ? new CallbackAnswer(CallbackVerdict.Ignore, "This sign-in has already had its answer; this request was ignored. Return to the terminal.")
                    : respond(query);
                _decided |= answer.Verdict != CallbackVerdict.Ignore;
                if (answer.Verdict == CallbackVerdict.Ignore)
                {
                    notices?.WriteLine("Ignored a request to the sign-in listener that is not this sign-in's answer (wrong or missing state; another program on this computer may have sent it). Still waiting for the browser.");
                    notices?.Flush();
                }

                return answer;
            }
        }
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
