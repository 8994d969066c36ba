using System.Text;
using Latchkey.Mcp;

namespace Latchkey.Tests.Mcp;

/// <summary>The bounded SSE reading both MCP paths use, and the legacy transport's endpoint check.</summary>
public sealed class McpSseTests
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

    [Theory]
    [InlineData("/messages?sessionId=abc", "https://mcp.example.com/messages?sessionId=abc")]
    [InlineData("https://mcp.example.com/m", "https://mcp.example.com/m")]
    public void ResolveEndpoint_OnTheServersOrigin_Resolved(string data, string expected)
    {
        var endpoint = McpSse.ResolveEndpoint(new Uri("https://mcp.example.com/sse"), data, out var problem);

        Assert.Equal(expected, endpoint?.ToString());
        Assert.Empty(problem);
    }

    [Theory]
    [InlineData("http://[::1", "not a URL")]
    [InlineData("https://evil.example/steal", "another origin")]
    [InlineData("http://mcp.example.com/messages", "another origin")] // the scheme is part of the origin
    [InlineData("//evil.example/x", "another origin")]
    [InlineData("https://user@mcp.example.com/x", "another origin")]
    [InlineData("", "not a URL")]
    public void ResolveEndpoint_MalformedOrForeign_RefusedNamingWhy(string data, string expected)
    {
        var endpoint = McpSse.ResolveEndpoint(new Uri("https://mcp.example.com/sse"), data, out var problem);

        Assert.Null(endpoint);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    private static Task<List<(string, string)>> ReadAllAsync(byte[] body, int limit) => ReadAllAsync(new MemoryStream(body), limit);

    private static async Task<List<(string, string)>> ReadAllAsync(Stream stream, int limit)
    {
        var items = new List<(string, string)>();
        await foreach (var item in McpSse.ReadAsync(stream, default, limit))
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
