using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Latchkey.Gateway;

/// <summary>
/// An agent's request body: streamed straight through (sent once), or kept in pooled buffers so the request can
/// be sent again after a refresh or to a fallback upstream.
/// </summary>
/// <remarks>
/// <b>Memory.</b> A kept body never grows past the limit its reader was given, whatever the request declares:
/// a chunked body (no <c>Content-Length</c>) is counted as it arrives, in buffers of at most
/// <see cref="MaxChunk"/> bytes, so an oversized one costs at most the limit before it is refused.
/// </remarks>
internal sealed class RequestBody : IDisposable
{
    private const int FirstChunk = 16 * 1024;
    private const int MaxChunk = 1024 * 1024;
    private byte[][]? _pooled;

    private RequestBody(ReadOnlySequence<byte> content, bool streamed, bool present, byte[][]? pooled = null)
    {
        Content = content;
        _pooled = pooled;
        IsStreamed = streamed;
        IsPresent = present;
    }

    public bool IsStreamed { get; }

    public bool IsPresent { get; }

    public long Length => Content.Length;

    /// <summary>The kept bytes (empty for a streamed body).</summary>
    public ReadOnlySequence<byte> Content { get; }

    /// <summary>The kept bytes in one piece (copied when they are in several buffers).</summary>
    public ReadOnlyMemory<byte> Memory => Content.IsSingleSegment ? Content.First : Content.ToArray();

    public static RequestBody None { get; } = new(ReadOnlySequence<byte>.Empty, false, false);

    public static RequestBody Streamed { get; } = new(ReadOnlySequence<byte>.Empty, true, true);

    /// <summary>Whether the request has a body at all (a length, or chunked framing).</summary>
    public static bool HasBody(HttpRequest request) =>
        request.ContentLength is > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);

    /// <summary>
    /// Reads the whole body when its declared length is at most <paramref name="limit"/>; otherwise (or for a
    /// chunked body) returns <see cref="Streamed"/>, to be sent once as it arrives. Kestrel never delivers more
    /// than the declared length, so at most <paramref name="limit"/> bytes are kept.
    /// </summary>
    public static async Task<RequestBody> ReadAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        if (!HasBody(request))
        {
            return None;
        }

        if (request.ContentLength is not { } length || length > limit)
        {
            return Streamed;
        }

        return await ReadAllAsync(request, (int)length, ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException("Kestrel delivered more than the declared Content-Length.");
    }

    /// <summary>
    /// Reads the whole body, declared length or chunked, keeping at most <paramref name="limit"/> bytes; null when
    /// the body is larger (the caller answers 413). Kestrel's own per-request body limit is set to
    /// <paramref name="limit"/> too, so the rest of an oversized body is never read.
    /// </summary>
    public static async Task<RequestBody?> ReadAllAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        if (!HasBody(request))
        {
            return None;
        }

        if (request.ContentLength > limit)
        {
            return null;
        }

        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } max)
        {
            max.MaxRequestBodySize = limit;
        }

        var chunks = new List<byte[]>();
        var filled = new List<int>();
        var total = 0L;
        var ok = false;
        try
        {
            var size = (int)Math.Clamp(request.ContentLength ?? FirstChunk, 1, MaxChunk);
            while (true)
            {
                var chunk = ArrayPool<byte>.Shared.Rent(size);
                chunks.Add(chunk);
                filled.Add(0);
                var used = 0;
                int n;
                do
                {
                    try
                    {
                        n = await request.Body.ReadAsync(chunk.AsMemory(used), ct).ConfigureAwait(false);
                    }
                    catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
                    {
                        return null;
                    }

                    used += n;
                    total += n;
                    filled[^1] = used;
                    if (total > limit)
                    {
                        return null;
                    }
                }
                while (n > 0 && used < chunk.Length && total != request.ContentLength);

                if (n == 0 || total == request.ContentLength)
                {
                    break;
                }

                size = Math.Min(size * 2, MaxChunk);
            }

            ok = true;
            return new RequestBody(Sequence(chunks, filled), false, true, [.. chunks]);
        }
        finally
        {
            if (!ok)
            {
                foreach (var chunk in chunks)
                {
                    ArrayPool<byte>.Shared.Return(chunk);
                }
            }
        }
    }

    /// <summary>Wraps bytes the gateway produced.</summary>
    public static RequestBody FromBytes(byte[] bytes) => new(new ReadOnlySequence<byte>(bytes), false, true);

    /// <summary>
    /// This body with the bytes from <paramref name="start"/> to <paramref name="end"/> replaced by
    /// <paramref name="replacement"/>, without copying the rest. The result shares this body's buffers: dispose
    /// this one after it.
    /// </summary>
    public RequestBody Replace(long start, long end, ReadOnlyMemory<byte> replacement)
    {
        var parts = new List<ReadOnlyMemory<byte>>();
        foreach (var part in Content.Slice(0, start))
        {
            parts.Add(part);
        }

        parts.Add(replacement);
        foreach (var part in Content.Slice(end))
        {
            parts.Add(part);
        }

        return new RequestBody(Sequence(parts), false, true);
    }

    /// <summary>The content to send upstream for a kept body.</summary>
    public HttpContent ToHttpContent() => Content.IsSingleSegment ? new ReadOnlyMemoryContent(Content.First) : new SequenceContent(Content);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _pooled, null) is { } pooled)
        {
            foreach (var chunk in pooled)
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }
        }
    }

    private static ReadOnlySequence<byte> Sequence(List<byte[]> chunks, List<int> filled) =>
        Sequence(chunks.Select((chunk, i) => (ReadOnlyMemory<byte>)chunk.AsMemory(0, filled[i])).ToList());

    /// <summary>The parts, in order, as one sequence (empty parts left out).</summary>
    internal static ReadOnlySequence<byte> Sequence(List<ReadOnlyMemory<byte>> parts)
    {
        parts.RemoveAll(p => p.IsEmpty);
        if (parts.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        if (parts.Count == 1)
        {
            return new ReadOnlySequence<byte>(parts[0]);
        }

        var first = new Segment(parts[0], 0);
        var last = first;
        foreach (var part in parts.Skip(1))
        {
            last = last.Append(part);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>Sends a kept body held in several buffers, buffer by buffer.</summary>
    private sealed class SequenceContent(ReadOnlySequence<byte> content) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            foreach (var part in content)
            {
                await stream.WriteAsync(part, cancellationToken).ConfigureAwait(false);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = content.Length;
            return true;
        }
    }
}
