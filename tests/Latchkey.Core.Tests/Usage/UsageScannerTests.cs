using System.Text;
using Latchkey.Usage;

namespace Latchkey.Tests.Usage;

public sealed class UsageScannerTests
{
    private const string AnthropicJson =
        """
        {"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi \"usage\": {\"input_tokens\": 999}"}],
         "stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,
         "cache_creation":{"ephemeral_5m_input_tokens":100},"output_tokens":34,"service_tier":"standard"}}
        """;

    private const string AnthropicStream =
        "event: message_start\n" +
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-1\",\"content\":[],\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":300,\"output_tokens\":1}}}\n\n" +
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
        "event: ping\ndata: {\"type\": \"ping\"}\n\n" +
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n" +
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n" +
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    private const string ChatJson =
        """
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",
         "choices":[{"index":0,"message":{"role":"assistant","content":"hi","usage":{"prompt_tokens":5000}},"finish_reason":"stop"}],
         "usage":{"prompt_tokens":1200,"completion_tokens":80,"total_tokens":1280,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},
                  "completion_tokens_details":{"reasoning_tokens":0}}}
        """;

    private const string ChatStream =
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"He\"}}],\"usage\":null}\r\n\r\n" +
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\r\n\r\n" +
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"total_tokens\":49,\"prompt_tokens_details\":{\"cached_tokens\":8}}}\r\n\r\n" +
        "data: [DONE]\r\n\r\n";

    private const string ResponsesJson =
        """
        {"id":"resp_1","object":"response","status":"completed","model":"gpt-5-codex","output":[{"type":"message","content":[{"type":"output_text","text":"ok"}]}],
         "usage":{"input_tokens":330,"input_tokens_details":{"cached_tokens":300},"output_tokens":21,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":351}}
        """;

    private const string ResponsesStream =
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5\",\"usage\":null}}\n\n" +
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"ok\"}\n\n" +
        "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"ok\"}\n\n" +
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"" + "long text " + "\"}]}],\n" +
        "data: \"usage\":{\"input_tokens\":100,\"input_tokens_details\":{\"cached_tokens\":60},\"output_tokens\":7}}}\n\n";

    public static TheoryData<string, string, string, long, long, long, long> Answers => new()
    {
        { "application/json", AnthropicJson, "claude-sonnet-4-5", 12, 34, 100, 2000 },
        { "text/event-stream", AnthropicStream, "claude-opus-4-1", 25, 15, 7, 300 },
        { "application/json; charset=utf-8", ChatJson, "gpt-4o-2024-08-06", 1200 - 1024, 80, 0, 1024 },
        { "text/event-stream; charset=utf-8", ChatStream, "gpt-4o-mini", 32, 9, 0, 8 },
        { "application/json", ResponsesJson, "gpt-5-codex", 30, 21, 0, 300 },
        { "text/event-stream", ResponsesStream, "gpt-5", 40, 7, 0, 60 },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public void Observe_WholeAnswerInOneChunk_ReadsTheProvidersCounts(string contentType, string body, string model, long input, long output, long creation, long read)
    {
        var (found, tokens) = Scan(contentType, Encoding.UTF8.GetBytes(body), chunk: int.MaxValue);

        Assert.Equal(model, found);
        Assert.Equal(new UsageTokens(input, output, creation, read), tokens);
    }

    [Theory]
    [MemberData(nameof(Answers))]
    public void Observe_AnswerCutIntoChunksOfEverySize_SameCountsAsWhole(string contentType, string body, string model, long input, long output, long creation, long read)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        foreach (var chunk in new[] { 1, 2, 3, 5, 7, 13, 64 })
        {
            var (found, tokens) = Scan(contentType, bytes, chunk);

            Assert.True(model == found, $"chunk {chunk}: model {found}");
            Assert.True(new UsageTokens(input, output, creation, read) == tokens, $"chunk {chunk}: {tokens}");
        }
    }

    [Fact]
    public void Observe_AnswerWithoutUsage_NoTokens()
    {
        var (_, tokens) = Scan("application/json", """{"data":[{"id":"claude-x","type":"model"}],"usage":null}"""u8.ToArray(), int.MaxValue);

        Assert.Null(tokens);
    }

    [Theory]
    [InlineData("text/html", null)]
    [InlineData("application/octet-stream", null)]
    [InlineData("application/json", "gzip")]
    [InlineData("text/event-stream", "br")]
    [InlineData(null, null)]
    public void For_AnswerThatCannotBeRead_Null(string? contentType, string? encoding)
    {
        Assert.Null(UsageScanner.For(contentType, encoding));
    }

    [Theory]
    [InlineData("-5", "7", 0, 7)]
    [InlineData("99999999999999999999999", "7", 0, 7)]
    [InlineData("1.5", "1e3", 0, 0)]
    [InlineData("\"12\"", "null", 0, 0)]
    [InlineData("9223372036854775807", "5000000000", UsageScanner.MaxTokensPerAnswer, UsageScanner.MaxTokensPerAnswer)]
    public void Observe_AbsurdCounts_IgnoredOrClampedNeverNegative(string input, string output, long expectedInput, long expectedOutput)
    {
        var body = $$$"""{"model":"m","usage":{"input_tokens":{{{input}}},"output_tokens":{{{output}}},"cache_read_input_tokens":-1}}""";

        var (_, tokens) = Scan("application/json", Encoding.UTF8.GetBytes(body), 3);

        Assert.Equal(new UsageTokens(expectedInput, expectedOutput, 0, 0), tokens);
    }

    [Fact]
    public void Observe_MalformedJsonAfterTheCounts_KeepsWhatWasReadAndThrowsNothing()
    {
        var (_, tokens) = Scan("application/json", """{"model":"m","usage":{"input_tokens":3,"output_tokens":4}, oops ]]]"""u8.ToArray(), 2);

        Assert.Equal(new UsageTokens(3, 4, 0, 0), tokens);
    }

    [Fact]
    public void Observe_StringLongerThanTheTokenBound_GivesUpThatValueWithBoundedMemory()
    {
        var huge = new string('x', UsageScanner.MaxTokenBytes + 10);
        var body = Encoding.UTF8.GetBytes($$$"""{"model":"m","content":"{{{huge}}}","usage":{"input_tokens":3,"output_tokens":4}}""");

        var (_, tokens) = Scan("application/json", body, 64 * 1024);

        Assert.Null(tokens); // the usage came after the string it gave up on
    }

    [Fact]
    public void Observe_StreamEventWithHugeStringThenUsageEvent_LaterEventStillRead()
    {
        var huge = new string('x', UsageScanner.MaxTokenBytes + 10);
        var body = Encoding.UTF8.GetBytes(
            $"event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"m\",\"junk\":\"{huge}\",\"usage\":{{\"input_tokens\":1}}}}}}\n\n" +
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}\n\n");

        var (_, tokens) = Scan("text/event-stream", body, 64 * 1024);

        Assert.Equal(new UsageTokens(5, 6, 0, 0), tokens);
    }

    [Fact]
    public void Observe_NestedDeeperThanTheBound_ThrowsNothingAndLaterEventsRead()
    {
        var deep = new string('[', 10_000);
        var body = Encoding.UTF8.GetBytes(
            $"data: {{\"usage\":{{\"input_tokens\":1}},\"x\":{deep}\n\n" +
            "data: {\"model\":\"m2\",\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n");

        var (model, tokens) = Scan("text/event-stream", body, 100);

        Assert.Equal("m2", model);
        Assert.Equal(new UsageTokens(9, 2, 0, 0), tokens);
    }

    [Fact]
    public void Observe_UsageNestedElsewhereOrInsideText_NotCounted()
    {
        var body = """{"model":"m","content":[{"type":"tool_result","usage":{"input_tokens":500}}],"metadata":{"usage":{"output_tokens":9}},"text":"\"usage\":{\"input_tokens\":1}"}"""u8.ToArray();

        var (_, tokens) = Scan("application/json", body, 4);

        Assert.Null(tokens);
    }

    [Fact]
    public void Observe_ModelNameLongerThanTheBound_Ignored()
    {
        var body = Encoding.UTF8.GetBytes($$$"""{"model":"{{{new string('m', UsageCount.MaxNameLength + 1)}}}","usage":{"input_tokens":1}}""");

        var (model, tokens) = Scan("application/json", body, 16);

        Assert.Null(model);
        Assert.Equal(1, tokens!.Value.Input);
    }

    [Fact]
    public void Observe_StreamWithBomCrLineEndsAndDataOverSeveralLines_ReadAsTheSseRulesSay()
    {
        var body = "\uFEFFevent:message_start\rdata:{\"type\":\"message_start\",\r\ndata:\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\r\r: comment\n\n"u8.ToArray();

        var (model, tokens) = Scan("text/event-stream", body, 5);

        Assert.Equal("m", model);
        Assert.Equal(new UsageTokens(4, 1, 0, 0), tokens);
    }

    private static (string? Model, UsageTokens? Tokens) Scan(string contentType, byte[] body, int chunk)
    {
        using var scanner = UsageScanner.For(contentType, null)!;
        for (var i = 0; i < body.Length; i += chunk)
        {
            scanner.Observe(body.AsSpan(i, Math.Min(chunk, body.Length - i)));
        }

        return (scanner.Model, scanner.Tokens);
    }
}
