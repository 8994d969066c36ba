using System.Buffers;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// An agent's request body: streamed straight through (sent once), or kept in a pooled buffer so the request can
/// be sent again after a refresh or to a fallback upstream.
/// </summary>
internal sealed class RequestBody : IDisposable
{
    private readonly bool _pooled;
    private byte[]? _buffer;

    private RequestBody(byte[]? buffer, int length, bool streamed, bool present, bool pooled = false)
    {
        _buffer = buffer;
        _pooled = pooled;
        Length = length;
        IsStreamed = streamed;
        IsPresent = present;
    }

    public bool IsStreamed { get; }

    public bool IsPresent { get; }

    public int Length { get; }

    public ReadOnlyMemory<byte> Memory => _buffer is null ? ReadOnlyMemory<byte>.Empty : _buffer.AsMemory(0, Length);

    public static RequestBody None { get; } = new(null, 0, false, false);

    public static RequestBody Streamed { get; } = new(null, 0, true, true);

    /// <summary>Whether the request has a body at all (a length, or chunked framing).</summary>
    public static bool HasBody(HttpRequest request) =>
        request.ContentLength is > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);

    /// <summary>
    /// Reads the whole body when its declared length is at most <paramref name="limit"/>; otherwise (or for a
    /// chunked body) returns <see cref="Streamed"/>, to be sent once as it arrives.
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

        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Max(length, 1));
        var read = 0;
        try
        {
            while (read < length)
            {
                var n = await request.Body.ReadAsync(buffer.AsMemory(read, (int)length - read), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        return new RequestBody(buffer, read, false, true, pooled: true);
    }

    /// <summary>Wraps bytes the gateway produced (a rewritten routing request).</summary>
    public static RequestBody FromBytes(byte[] bytes) => new(bytes, bytes.Length, false, true);

    public void Dispose()
    {
        if (_buffer is { } b && _pooled)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(b);
        }
    }
}
