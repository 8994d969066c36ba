using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.UpstreamSim;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// Usage read from the providers' own counts as answers pass through a real gateway: JSON and streamed answers of the
/// Anthropic Messages, OpenAI chat completions and Responses APIs, compared with what the simulated upstream says it
/// reported; a stream's first event reaching the agent before the upstream has finished (nothing is buffered to read
/// it); and a hostile upstream's absurd or malformed usage, which neither breaks the answer nor corrupts the totals.
/// </summary>
public sealed class UsageTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    private GatewayProcess Gateway => fixture.Gateway;

    private SimulatedUpstream Upstream => fixture.Upstream;

    [Fact]
    public async Task Usage_JsonAndStreamedAnswersOfBothApis_MatchTheUpstreamsOwnCountsPerKeyCredentialAndModel()
    {
        var (_, anthropicKey) = await fixture.AnthropicAsync("use-anth");
        var (_, openAiKey) = await fixture.OpenAiAsync("use-oai");
        (string Path, string Key, string Body)[] calls =
        [
            ("/c/use-anth/v1/messages", anthropicKey, """{"model":"u-claude-json","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"""),
            ("/c/use-anth/v1/messages", anthropicKey, """{"model":"u-claude-sse","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello there"}]}"""),
            ("/c/use-oai/chat/completions", openAiKey, """{"model":"u-gpt-json","messages":[{"role":"user","content":"hi"}]}"""),
            ("/c/use-oai/chat/completions", openAiKey, """{"model":"u-gpt-sse","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a longer question"}]}"""),
            ("/c/use-oai/responses", openAiKey, """{"model":"u-resp-json","input":"what is up"}"""),
            ("/c/use-oai/responses", openAiKey, """{"model":"u-resp-sse","stream":true,"input":"tell me more please"}"""),
        ];

        var reported = new Dictionary<string, SimUsage>();
        foreach (var (path, key, body) in calls)
        {
            using var request = Post(path, key, body);
            request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip, br");
            using var response = await Gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
            var requestId = response.Headers.TryGetValues("request-id", out var a) ? a.Single() : response.Headers.GetValues("x-request-id").Single();
            var usage = Upstream.UsageReported.Single(u => u.RequestId == requestId);
            reported[usage.Model] = usage;
        }

        var byModel = await UsageJsonAsync(6, "--by", "model");
        foreach (var (model, u) in reported)
        {
            var row = byModel.GetProperty("rows").EnumerateArray().Single(r => r.GetProperty("name").GetString() == model);
            Assert.Equal((1L, u.Input, u.Output, u.CacheCreation, u.CacheRead), Counts(row));
            Assert.Equal(u.Input + u.Output + u.CacheCreation + u.CacheRead, row.GetProperty("total_tokens").GetInt64());
        }

        Assert.Equal(6, reported.Count);
        Assert.Contains(reported.Values, u => u.CacheRead > 0 && u.Api != "anthropic"); // OpenAI's cached tokens were taken out of its input
        var byKey = await UsageJsonAsync(6, "--by", "key");
        AssertSum(byKey, "use-anth-key", reported.Values.Where(u => u.Api == "anthropic"));
        AssertSum(byKey, "use-oai-key", reported.Values.Where(u => u.Api != "anthropic"));
        var byCredential = await UsageJsonAsync(6, "--by", "credential");
        AssertSum(byCredential, "use-oai", reported.Values.Where(u => u.Api != "anthropic"));
        var today = DateOnly.FromDateTime(DateTime.UtcNow).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        Assert.All(byKey.GetProperty("days").EnumerateArray().Where(d => d.GetProperty("name").GetString()!.StartsWith("use-", StringComparison.Ordinal)),
            d => Assert.Equal(today, d.GetProperty("day").GetString()));

        // The upstream was asked for an answer it need not be decompressed to be read, whatever the agent accepts.
        Assert.All(Upstream.Requests.Where(r => r.PathAndQuery.Contains("/messages", StringComparison.Ordinal) || r.PathAndQuery.Contains("/responses", StringComparison.Ordinal)),
            r => Assert.Equal("identity", r.Headers["Accept-Encoding"]));

        var table = await Gateway.Cli(null, "usage", "--by", "model");
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("u-resp-sse", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("total", table.Stdout, StringComparison.Ordinal);
        Assert.All(fixture.Secrets, s => Assert.DoesNotContain(s, table.Stdout + byKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Usage_StreamedAnswer_FirstEventReachesTheAgentBeforeTheUpstreamFinishes()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = async context =>
            {
                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync(
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"slow-model\",\"usage\":{\"input_tokens\":40,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}\n\n");
                await context.Response.Body.FlushAsync();
                await release.Task.WaitAsync(TimeSpan.FromSeconds(30));
                await context.Response.WriteAsync("event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
            },
        });
        await upstream.StartAsync();
        await Gateway.AddApiKeyAsync("use-slow", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await Gateway.CreateKeyAsync("use-slow-key", "use-slow");

        using var request = Post("/c/use-slow/v1/messages", key, """{"model":"slow-model","stream":true,"max_tokens":8,"messages":[]}""");
        using var response = await Gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var first = await ReadUntilAsync(body, "\n\n").WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(release.Task.IsCompleted); // the upstream is still holding the rest of its answer
        Assert.Contains("message_start", first, StringComparison.Ordinal);
        release.SetResult();
        var rest = await new StreamReader(body).ReadToEndAsync();
        Assert.EndsWith("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", first + rest, StringComparison.Ordinal);
        var byKey = await UsageJsonAsync(1, "--by", "key", only: "use-slow-key");
        Assert.Equal((1L, 40L, 9L, 0L, 2L), Counts(Row(byKey, "use-slow-key")));
    }

    [Fact]
    public async Task Usage_HostileUpstreamSendsAbsurdHugeOrMalformedUsage_AnswersPassUnchangedAndTotalsStaySane()
    {
        var huge = new string('x', 3 * 1024 * 1024);
        var answers = new Dictionary<string, (string ContentType, string Body)>
        {
            ["h-negative"] = ("application/json", """{"model":"h-negative","usage":{"input_tokens":-5,"output_tokens":99999999999999999999999,"cache_read_input_tokens":1e400,"cache_creation_input_tokens":"12"}}"""),
            ["h-clamped"] = ("application/json", """{"model":"h-clamped","usage":{"input_tokens":9223372036854775807,"output_tokens":3}}"""),
            ["h-malformed"] = ("application/json", """{"model":"h-malformed","usage":{"input_tokens":5,"output_tokens":6},"rest":[1,2,}}}}"""),
            ["h-deep"] = ("text/event-stream", "data: {\"model\":\"h-deep\",\"x\":" + new string('[', 5000) + "\n\ndata: {\"model\":\"h-deep\",\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"),
            ["h-huge"] = ("text/event-stream", $"event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"h-huge\",\"junk\":\"{huge}\",\"usage\":{{\"input_tokens\":1000}}}}}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"input_tokens\":11,\"output_tokens\":12}}}}\n\n"),
            ["h-gzip"] = ("application/json", """{"model":"h-gzip","usage":{"input_tokens":5}}"""),
        };
        await using var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = async context =>
            {
                var model = context.Request.Headers["x-sim-model"].ToString();
                var (contentType, body) = answers[model];
                context.Response.ContentType = contentType;
                if (model == "h-gzip")
                {
                    context.Response.Headers.ContentEncoding = "gzip"; // ignores the identity it was asked for: not read
                }

                await context.Response.WriteAsync(body);
            },
        });
        await upstream.StartAsync();
        await Gateway.AddApiKeyAsync("use-hostile", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await Gateway.CreateKeyAsync("use-hostile-key", "use-hostile");

        foreach (var (model, (_, expected)) in answers)
        {
            using var request = Post("/c/use-hostile/v1/messages", key, """{"model":"asked","messages":[]}""");
            request.Headers.Add("x-sim-model", model);
            using var response = await Gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(expected == Encoding.UTF8.GetString(await response.Content.ReadAsByteArrayAsync()), $"{model}: the answer was changed");
        }

        var byModel = await UsageJsonAsync(5, "--by", "model", only: "use-hostile-key");
        var rows = byModel.GetProperty("rows").EnumerateArray().Where(r => r.GetProperty("name").GetString()!.StartsWith("h-", StringComparison.Ordinal)).ToDictionary(r => r.GetProperty("name").GetString()!);
        Assert.Equal((1L, 0L, 0L, 0L, 0L), Counts(rows["h-negative"])); // negative, beyond 64 bits, fractional, a string: ignored
        Assert.Equal((1L, 1_000_000_000L, 3L, 0L, 0L), Counts(rows["h-clamped"])); // clamped to a billion per answer
        Assert.Equal((1L, 5L, 6L, 0L, 0L), Counts(rows["h-malformed"])); // what came before the damage
        Assert.Equal((1L, 7L, 1L, 0L, 0L), Counts(rows["h-deep"])); // the next event, after one nested too deep
        Assert.Equal((1L, 11L, 12L, 0L, 0L), Counts(rows["h-huge"])); // the next event, after one with a 3 MiB string
        Assert.False(rows.ContainsKey("h-gzip")); // an encoded answer is not read
    }

    private static HttpRequestMessage Post(string path, string key, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        return request;
    }

    /// <summary><c>latchkey usage --json</c> once it counts at least <paramref name="requests"/> answers (of key <paramref name="only"/>, when given).</summary>
    private async Task<JsonElement> UsageJsonAsync(int requests, string by, string value, string? only = null)
    {
        JsonElement found = default;
        var counted = await RealTime.UntilAsync(async () =>
        {
            var result = await Gateway.Cli(null, "usage", "--json", "--since", "1d", by, value);
            Assert.True(result.ExitCode == 0, result.ToString());
            found = JsonDocument.Parse(result.Stdout).RootElement.Clone();
            var keys = only is null ? found.GetProperty("total") : (await Gateway.Cli(null, "usage", "--json", "--by", "key")) is var k && k.ExitCode == 0
                ? JsonDocument.Parse(k.Stdout).RootElement.GetProperty("rows").EnumerateArray().FirstOrDefault(r => r.GetProperty("name").GetString() == only)
                : default;
            return keys.ValueKind == JsonValueKind.Object && keys.GetProperty("requests").GetInt64() >= requests;
        }, TimeSpan.FromSeconds(20));
        Assert.True(counted, Gateway.Log);
        return found;
    }

    private static JsonElement Row(JsonElement usage, string name) =>
        usage.GetProperty("rows").EnumerateArray().Single(r => r.GetProperty("name").GetString() == name);

    private static (long, long, long, long, long) Counts(JsonElement row) => (
        row.GetProperty("requests").GetInt64(), row.GetProperty("input_tokens").GetInt64(), row.GetProperty("output_tokens").GetInt64(),
        row.GetProperty("cache_creation_tokens").GetInt64(), row.GetProperty("cache_read_tokens").GetInt64());

    private static void AssertSum(JsonElement usage, string name, IEnumerable<SimUsage> reported)
    {
        var list = reported.ToList();
        Assert.Equal(((long)list.Count, list.Sum(u => u.Input), list.Sum(u => u.Output), list.Sum(u => u.CacheCreation), list.Sum(u => u.CacheRead)), Counts(Row(usage, name)));
    }

    private static async Task<string> ReadUntilAsync(Stream stream, string end)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        while (!text.ToString().Contains(end, StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer);
            if (n == 0)
            {
                break;
            }

            text.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        return text.ToString();
    }
}
