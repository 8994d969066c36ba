using System.Net.ServerSentEvents;

namespace Latchkey.Mcp;

/// <summary>
/// Server-Sent Events from an MCP server, read with the BCL's <see cref="SseParser"/> over a stream that bounds how
/// much one event may hold, and the legacy transport's <c>endpoint</c> event checked.
/// </summary>
/// <remarks>
/// <para><b>Why a bound.</b> The MCP server is not trusted with Latchkey's memory: <see cref="SseParser"/> keeps a
/// line (and an event's data) in memory until it ends, so a server that sends one endless line, or endless
/// <c>data:</c> lines without the blank line that ends an event, would grow it without limit. The
/// <see cref="BoundedEventStream"/> under the parser counts the bytes of the event being read and throws
/// <see cref="SseEventTooLargeException"/> once they pass <see cref="MaxEventBytes"/>, so memory stays within a few
/// times that bound however much the server sends.</para>
/// </remarks>
internal static class McpSse
{
    /// <summary>The most bytes one event (all its lines, comments included) may have: 8 MiB, far above any MCP
    /// message a client would take, far below what would hurt the machine.</summary>
    public const int MaxEventBytes = 8 * 1024 * 1024;

    /// <summary>The events of <paramref name="stream"/>, each at most <paramref name="maxEventBytes"/> bytes.</summary>
    /// <exception cref="SseEventTooLargeException">While enumerating: an event grew past the bound.</exception>
    public static IAsyncEnumerable<SseItem<string>> ReadAsync(Stream stream, CancellationToken ct, int maxEventBytes = MaxEventBytes) =>
        SseParser.Create(new BoundedEventStream(stream, maxEventBytes)).EnumerateAsync(ct);

    /// <summary>
    /// Resolves the legacy transport's <c>endpoint</c> event against the server's URL. The result must be on the
    /// server's own origin (scheme, host and port), since the POSTs sent there carry the server's token.
    /// </summary>
    /// <returns>The endpoint, or null with <paramref name="problem"/> saying why it was refused.</returns>
    public static Uri? ResolveEndpoint(Uri server, string data, out string problem)
    {
        ArgumentNullException.ThrowIfNull(server);
        var text = (data ?? string.Empty).Trim();
        var shown = text.Length <= 200 ? text : text[..200] + "…";
        if (text.Length == 0 || !Uri.TryCreate(server, text, out var endpoint) || !endpoint.IsAbsoluteUri)
        {
            problem = $"its 'endpoint' event named '{shown}', which is not a URL";
            return null;
        }

        var origin = server.GetLeftPart(UriPartial.Authority);
        if (!string.Equals(endpoint.GetLeftPart(UriPartial.Authority), origin, StringComparison.OrdinalIgnoreCase) || !string.IsNullOrEmpty(endpoint.UserInfo))
        {
            problem = $"its 'endpoint' event named a URL on another origin ({(endpoint.IsAbsoluteUri ? endpoint.GetLeftPart(UriPartial.Authority) : shown)}, not {origin}); the server's token is only ever sent to the server's own origin";
            return null;
        }

        problem = string.Empty;
        return endpoint;
    }

    /// <summary>
    /// A read-only view of a stream that throws once the event being read passes a size: it follows the SSE line
    /// ends (CR, LF, CRLF) and counts bytes since the last blank line, which is where an event ends.
    /// </summary>
    internal sealed class BoundedEventStream(Stream inner, int maxEventBytes) : Stream
    {
        private long _line;
        private long _event;
        private bool _afterCr;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = inner.Read(buffer);
            Count(buffer[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            Count(buffer.Span[..read]);
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private void Count(ReadOnlySpan<byte> bytes)
        {
            while (!bytes.IsEmpty)
            {
                if (_afterCr && bytes[0] == (byte)'\n')
                {
                    _afterCr = false; // the LF of a CRLF: the line already ended at the CR
                    bytes = bytes[1..];
                    continue;
                }

                _afterCr = false;
                var end = bytes.IndexOfAny((byte)'\r', (byte)'\n');
                var run = end < 0 ? bytes.Length : end;
                _line += run;
                _event += run;
                if (_event > maxEventBytes)
                {
                    throw new SseEventTooLargeException(maxEventBytes);
                }

                if (end < 0)
                {
                    return;
                }

                if (_line == 0)
                {
                    _event = 0; // a blank line: the event is complete
                }

                _line = 0;
                _afterCr = bytes[end] == (byte)'\r';
                bytes = bytes[(end + 1)..];
            }
        }
    }
}

/// <summary>An MCP server sent an event (or a line) larger than Latchkey reads; the stream was refused.</summary>
internal sealed class SseEventTooLargeException(int limit)
    : IOException($"The MCP server sent an event larger than {limit / (1024 * 1024)} MiB (or a line that never ended); Latchkey refused the stream rather than hold it in memory.")
{
    public int Limit { get; } = limit;
}
