using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;

namespace Latchkey.Http;

/// <summary>
/// The one way Latchkey reads Server-Sent Events: the BCL's <see cref="SseParser"/> over a stream that bounds how much
/// one event may hold. Every event Latchkey reads comes from an MCP server: the stdio bridge (Streamable HTTP answers,
/// the GET stream, the legacy stream), the MCP proxy's legacy path, and sign-in's <c>initialize</c> probe.
/// </summary>
/// <remarks>
/// <para><b>Values.</b> One rule, the SSE rule, applied by the parser and nowhere else: a field's value is what follows
/// its colon, less one space when a space follows the colon; the <c>data</c> lines of an event are joined with LF;
/// an event without an <c>event</c> field has the type <c>message</c>. Nothing else is trimmed here; a reader that
/// takes a value as a URL or as JSON applies that format's own rules.</para>
/// <para><b>Messages.</b> <see cref="MessagesAsync"/> and <see cref="Messages"/> give the data of the events an MCP
/// client takes as JSON-RPC messages: type <c>message</c>, data not empty. An event that only sets an id (a priming
/// event) or a retry interval is not one.</para>
/// <para><b>Why a bound.</b> An MCP server is not trusted with Latchkey's memory: <see cref="SseParser"/> keeps a line
/// (and an event's data) in memory until it ends, so a server that sends one endless line, or endless <c>data:</c>
/// lines without the blank line that ends an event, would grow it without limit. The stream under the parser counts
/// the bytes of the event being read and throws <see cref="SseEventTooLargeException"/> once they pass the bound
/// (<see cref="MaxEventBytes"/> unless a caller names a smaller one), so memory stays within a few times that bound
/// however much the server sends.</para>
/// <para><b>Not here.</b> Where the gateway only passes an upstream's event stream through (<c>/c</c>, <c>/r</c>,
/// Streamable HTTP answers through <c>/mcp</c>) nothing is parsed: the bytes are copied as they come.</para>
/// </remarks>
internal static class SseReader
{
    /// <summary>The most bytes one event (all its lines, comments included) may have: 8 MiB, far above any MCP
    /// message a client would take, far below what would hurt the machine.</summary>
    public const int MaxEventBytes = 8 * 1024 * 1024;

    /// <summary>The events of <paramref name="stream"/>, each at most <paramref name="maxEventBytes"/> bytes.</summary>
    /// <exception cref="SseEventTooLargeException">While enumerating: an event grew past the bound.</exception>
    public static IAsyncEnumerable<SseItem<string>> ReadAsync(Stream stream, CancellationToken ct, int maxEventBytes = MaxEventBytes) =>
        SseParser.Create(new BoundedEventStream(stream, maxEventBytes)).EnumerateAsync(ct);

    /// <summary>The JSON-RPC messages of <paramref name="stream"/> (see remarks), as they arrive.</summary>
    /// <exception cref="SseEventTooLargeException">While enumerating: an event grew past <see cref="MaxEventBytes"/>.</exception>
    public static async IAsyncEnumerable<string> MessagesAsync(Stream stream, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var item in ReadAsync(stream, ct).ConfigureAwait(false))
        {
            if (IsMessage(item))
            {
                yield return item.Data;
            }
        }
    }

    /// <summary>The JSON-RPC messages of an event stream already read whole (<paramref name="body"/>).</summary>
    /// <exception cref="SseEventTooLargeException">While enumerating: an event grew past <see cref="MaxEventBytes"/>.</exception>
    public static IEnumerable<string> Messages(byte[] body) =>
        SseParser.Create(new BoundedEventStream(new MemoryStream(body, writable: false), MaxEventBytes)).Enumerate().Where(IsMessage).Select(item => item.Data);

    private static bool IsMessage(SseItem<string> item) => item.EventType == SseParser.EventTypeDefault && item.Data.Length > 0;

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
