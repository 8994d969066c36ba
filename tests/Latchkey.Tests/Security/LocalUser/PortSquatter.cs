using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Another local user's server on 127.0.0.1 (on a port a gateway used to hold, or on any other): a plain TCP
/// listener that speaks just enough HTTP/1.1, answers <c>GET /healthz</c> with the bytes it is given (those the real
/// gateway answered: same home path, pid, version), anything else with its HTML page or <c>200 {}</c>, and records
/// every request it receives, head and body, byte for byte.
/// </summary>
internal sealed class PortSquatter : IAsyncDisposable
{
    private const int MaxRequestBytes = 1024 * 1024;
    private readonly TcpListener _listener;
    private readonly byte[] _health;
    private readonly byte[]? _page;
    private readonly List<string> _requests = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    /// <param name="port">The port to listen on; 0 for any free one.</param>
    /// <param name="healthBody">What <c>GET /healthz</c> answers.</param>
    /// <param name="page">The HTML every other request gets; null for <c>{}</c>.</param>
    public PortSquatter(int port, byte[] healthBody, string? page = null)
    {
        _health = healthBody;
        _page = page is null ? null : Encoding.UTF8.GetBytes(page);
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true); // the dead gateway's connections may linger in TIME_WAIT
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accepting = AcceptAsync();
    }

    public string Url { get; }

    /// <summary>Every request received so far, as text (request line, headers, body).</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>The request lines received (e.g. <c>GET /healthz HTTP/1.1</c>), without headers.</summary>
    public IReadOnlyList<string> RequestLines => [.. Requests.Select(r => r.Split("\r\n")[0])];

    /// <summary>The values of header <paramref name="name"/> in every request received.</summary>
    public IReadOnlyList<string> HeaderValues(string name) =>
        [.. Requests.SelectMany(r => r.Split("\r\n\r\n")[0].Split("\r\n").Skip(1))
            .Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase)).Select(p => p[1].Trim())];

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                await using var stream = client.GetStream();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                var buffer = new byte[MaxRequestBytes];
                var total = 0;
                int headEnd;
                while ((headEnd = buffer.AsSpan(0, total).IndexOf("\r\n\r\n"u8)) < 0)
                {
                    var read = await stream.ReadAsync(buffer.AsMemory(total), timeout.Token);
                    if (read == 0 || total + read >= buffer.Length)
                    {
                        Record(Encoding.Latin1.GetString(buffer, 0, total + read));
                        return;
                    }

                    total += read;
                }

                var head = Encoding.Latin1.GetString(buffer, 0, headEnd);
                var length = head.Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("content-length", StringComparison.OrdinalIgnoreCase))
                    .Select(p => int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
                var wanted = Math.Min(headEnd + 4 + length, buffer.Length);
                while (total < wanted)
                {
                    var read = await stream.ReadAsync(buffer.AsMemory(total, wanted - total), timeout.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    total += read;
                }

                Record(Encoding.Latin1.GetString(buffer, 0, total));
                var health = head.StartsWith("GET /healthz ", StringComparison.Ordinal);
                var body = health ? _health : _page ?? "{}"u8.ToArray();
                var type = health || _page is null ? "application/json" : "text/html; charset=utf-8";
                var answer = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: {type}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
                await stream.WriteAsync(answer, timeout.Token);
                await stream.WriteAsync(body, timeout.Token);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or FormatException)
            {
            }
        }
    }

    private void Record(string request)
    {
        lock (_requests)
        {
            _requests.Add(request);
        }
    }
}
