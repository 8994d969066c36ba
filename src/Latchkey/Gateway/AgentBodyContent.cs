using System.Buffers;
using System.Net;

namespace Latchkey.Gateway;

/// <summary>Which side of a body copy failed.</summary>
internal enum BodySide
{
    None,

    /// <summary>The agent: its body broke off, or it sent nothing for the idle limit.</summary>
    Agent,

    /// <summary>The upstream: it stopped taking the body, or took nothing for the idle limit.</summary>
    Upstream,
}

/// <summary>
/// An agent's request body streamed to the upstream as it arrives (sent once), remembering which side failed if
/// the copy fails, so a broken or idle agent is told apart from an upstream that stopped reading. The copy is cut
/// when neither side moves a byte for the idle limit (<see cref="ActivityTimeout"/>).
/// </summary>
/// <remarks>The length is not computed: the agent's <c>Content-Length</c> (or chunked framing) is copied with its
/// headers, as for any streamed body.</remarks>
internal sealed class AgentBodyContent(Stream agent, TimeSpan idleLimit, TimeProvider time) : HttpContent
{
    private const int BufferSize = 64 * 1024;

    /// <summary>The side that failed, or <see cref="BodySide.None"/> while the copy has not failed.</summary>
    public BodySide Failed { get; private set; }

    /// <summary>Whether the failure was the idle limit passing rather than an error.</summary>
    public bool IdledOut { get; private set; }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        using var activity = new ActivityTimeout(idleLimit, time, cancellationToken);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                int read;
                try
                {
                    read = await agent.ReadAsync(buffer, activity.Token).ConfigureAwait(false);
                }
                catch when (!cancellationToken.IsCancellationRequested)
                {
                    (Failed, IdledOut) = (BodySide.Agent, activity.Expired);
                    throw;
                }

                if (read == 0)
                {
                    return;
                }

                activity.Restart();
                try
                {
                    await stream.WriteAsync(buffer.AsMemory(0, read), activity.Token).ConfigureAwait(false);
                }
                catch when (!cancellationToken.IsCancellationRequested)
                {
                    (Failed, IdledOut) = (BodySide.Upstream, activity.Expired);
                    throw;
                }

                activity.Restart();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
