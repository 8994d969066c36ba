using System.Text;
using Latchkey.Http;

namespace Latchkey.Tests.Http;

/// <summary>
/// The one Server-Sent-Events reader (the BCL's parser, each event bounded) that the stdio bridge, the MCP proxy's
/// legacy path and sign-in's probe read with: line ends, the value rule, which events are messages, and the bound.
/// </summary>
public sealed class SseReaderTests
{
    [Fact]
    public async Task Read_EventsWithLfCrLfAndCrLineEnds_ParsedByTheBclParser()
    {
        var text = "event: endpoint\r\ndata: /messages?s=1\r\n\r\n: a comment\ndata: {\"a\":1}\n\nevent: message\rdata: x\rdata: y\r\r";

        var items = await ReadAllAsync(Encoding.UTF8.GetBytes(text), 1024);

        Assert.Equal([("endpoint", "/messages?s=1"), ("message", "{\"a\":1}"), ("message", "x\ny")], items);
    }

    [Fact]
    public async Task Read_ALineThatNeverEnds_RefusedOnceItPassesTheBound()
    {
        var stream = new EndlessStream((byte)'x');

        var refused = await Assert.ThrowsAsync<SseEventTooLargeException>(() => ReadAllAsync(stream, 64 * 1024));

        Assert.InRange(stream.Served, 64 * 1024, (64 * 1024) + (64 * 1024)); // stopped within a read or two of the bound
        Assert.Contains("never ended", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_EndlessDataLinesWithoutABlankLine_RefusedOnceTheEventPassesTheBound()
    {
        var line = "data: 0123456789abcdef\n"u8.ToArray();
        var body = Enumerable.Range(0, 10_000).SelectMany(_ => line).ToArray();

        await Assert.ThrowsAsync<SseEventTooLargeException>(() => ReadAllAsync(body, 64 * 1024));
    }

    [Fact]
    public async Task Read_ManyEventsEachUnderTheBound_AllRead()
    {
        var one = "data: " + new string('x', 40_000) + "\n\n";
        var body = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(one, 50))); // 2 MB in all, 40 KB each

        var items = await ReadAllAsync(body, 64 * 1024);

        Assert.Equal(50, items.Count);
    }

    [Fact]
    public async Task Read_ValueAfterTheColon_OneLeadingSpaceRemovedAndNothingElse()
    {
        var text = "data:no-space\n\ndata:  two spaces \n\nevent:  padded\ndata: x\n\n";

        var items = await ReadAllAsync(Encoding.UTF8.GetBytes(text), 1024);

        Assert.Equal([("message", "no-space"), ("message", " two spaces "), (" padded", "x")], items);
    }

    [Fact]
    public async Task MessagesAsync_PrimingEndpointAndNamedEvents_OnlyMessagesWithData()
    {
        var text = "id: 1\ndata:\n\nevent: endpoint\ndata: /m\n\nevent: ping\ndata: {}\n\n: comment\n\ndata: {\"id\":1}\n\nevent: message\ndata: {\"id\":2}\n\n";
        var messages = new List<string>();

        await foreach (var message in SseReader.MessagesAsync(new MemoryStream(Encoding.UTF8.GetBytes(text)), default))
        {
            messages.Add(message);
        }

        Assert.Equal(["{\"id\":1}", "{\"id\":2}"], messages);
        Assert.Equal(messages, SseReader.Messages(Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void Messages_AnEventPastTheBound_Refused()
    {
        var body = Encoding.UTF8.GetBytes("data: " + new string('x', SseReader.MaxEventBytes) + "\n\n");

        Assert.Throws<SseEventTooLargeException>(() => SseReader.Messages(body).ToList());
    }

    private static Task<List<(string, string)>> ReadAllAsync(byte[] body, int limit) => ReadAllAsync(new MemoryStream(body), limit);

    private static async Task<List<(string, string)>> ReadAllAsync(Stream stream, int limit)
    {
        var items = new List<(string, string)>();
        await foreach (var item in SseReader.ReadAsync(stream, default, limit))
        {
            items.Add((item.EventType, item.Data));
        }

        return items;
    }

    /// <summary>A stream that never ends and never sends a line end, counting what it served.</summary>
    private sealed class EndlessStream(byte fill) : Stream
    {
        public long Served { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            buffer.AsSpan(offset, count).Fill(fill);
            Served += count;
            return count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
