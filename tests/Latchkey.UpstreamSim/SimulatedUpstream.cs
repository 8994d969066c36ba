using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Latchkey.UpstreamSim;

/// <summary>How a <see cref="SimulatedUpstream"/> answers. Mutable between requests; read once per request.</summary>
internal sealed class SimBehaviour
{
    /// <summary>
    /// What every request gets unless its <c>sim-scenario</c> header says otherwise: <c>ok</c>, <c>auth_error</c>,
    /// <c>oauth_not_supported</c>, <c>restricted</c>, <c>missing_scope</c>, <c>permission</c>,
    /// <c>invalid_api_key</c>, <c>rate_limit</c>, <c>overloaded</c>, <c>server_error</c>, <c>reset</c>,
    /// <c>reset_mid_stream</c>, <c>hang</c>. A <c>TRACE</c> request is always echoed back (headers included), as a
    /// server with tracing left on does.
    /// </summary>
    public string Scenario { get; set; } = "ok";

    /// <summary>The credentials accepted (in <c>x-api-key</c> or <c>Authorization: Bearer</c>); null accepts any non-empty one.</summary>
    public Func<string, bool>? Accept { get; set; }

    /// <summary>The pause before each streamed event after the first.</summary>
    public TimeSpan ChunkDelay { get; set; } = TimeSpan.Zero;

    /// <summary>How many text deltas a streamed answer has.</summary>
    public int DeltaEvents { get; set; } = 3;

    /// <summary>The <c>retry-after</c> seconds sent with 429 and 529.</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>
    /// When set, answers every request itself (after it is recorded) instead of the scenarios: a hostile upstream
    /// for the security tests (forged headers, redirects, cookies, a credential echoed in an error).
    /// </summary>
    public Func<HttpContext, Task>? Respond { get; set; }

    /// <summary>
    /// When set, the simulated model: given a request's JSON body, the content blocks of the assistant's answer
    /// (<c>{"type":"text","text":...}</c> or <c>{"type":"tool_use","name":...,"input":{...}}</c>; a tool use's id is
    /// added). An answer with a tool use stops with <c>stop_reason</c> <c>tool_use</c>, else <c>end_turn</c>. For
    /// <c>/v1/responses</c> the same blocks become output items: the text a <c>message</c>, a tool use a
    /// <c>function_call</c> (a name <c>NAMESPACE/NAME</c>, as for the tools of a namespace such as Codex's
    /// <c>mcp__SERVER</c>, gives the call that <c>namespace</c>; its input becomes the <c>arguments</c> string). Null answers
    /// <c>word0 word1 ...</c> (<see cref="DeltaEvents"/> words).
    /// </summary>
    public Func<JsonObject, IReadOnlyList<JsonObject>>? Model { get; set; }
}

/// <summary>
/// The usage one answer reported, as the simulated provider counted it, in the four non-overlapping counts Latchkey
/// keeps: <paramref name="Input"/> excludes cached tokens, whatever the API's own field includes.
/// </summary>
internal sealed record SimUsage(string RequestId, string Api, string Model, long Input, long Output, long CacheCreation, long CacheRead);

/// <summary>One request as the upstream received it.</summary>
internal sealed record SeenRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, byte[] Body, string? Credential)
{
    /// <summary>The request target exactly as it arrived on the request line (no decoding).</summary>
    public string RawTarget { get; init; } = string.Empty;

    public JsonObject? Json => Body.Length == 0 ? null : JsonNode.Parse(Body) as JsonObject;
}

/// <summary>
/// A simulated LLM provider on Kestrel (127.0.0.1, port 0): Anthropic <c>/v1/messages</c> and
/// <c>/v1/messages/count_tokens</c>, OpenAI <c>/v1/chat/completions</c>, <c>/v1/responses</c> and <c>/v1/models</c>, with their real
/// error bodies, <c>request-id</c>/<c>x-request-id</c> headers and SSE event sequences, plus <c>/echo/...</c>,
/// which answers with what it received. Every request is recorded (<see cref="Requests"/>), and so is the time
/// each streamed event was written (<see cref="EventsSent"/>).
/// </summary>
internal sealed class SimulatedUpstream(SimBehaviour? behaviour = null) : IAsyncDisposable
{
    private WebApplication? _app;
    private int _sequence;

    public SimBehaviour Behaviour { get; } = behaviour ?? new SimBehaviour();

    /// <summary>Whether requests are kept in <see cref="Requests"/> (off for benchmarks).</summary>
    public bool RecordRequests { get; init; } = true;

    public ConcurrentQueue<SeenRequest> Requests { get; } = new();

    /// <summary>For each streamed event: the request id, the event's index and when it was flushed.</summary>
    public ConcurrentQueue<(string RequestId, int Index, DateTimeOffset At)> EventsSent { get; } = new();

    public string Url { get; private set; } = string.Empty;

    /// <summary>
    /// The usage each successful model answer reported (JSON or stream, both APIs), in the order the answers were
    /// made. A streamed chat completion reports usage only when the request asked for it
    /// (<c>stream_options.include_usage</c>); a stream broken midway is recorded all the same.
    /// </summary>
    public ConcurrentQueue<SimUsage> UsageReported { get; } = new();

    /// <summary>Starts on <paramref name="address"/> (default 127.0.0.1) and <paramref name="port"/> (default: a free one).</summary>
    public async Task StartAsync(int port = 0, IPAddress? address = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ApplicationName = "upstream-sim" });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(address ?? IPAddress.Loopback, port, o => o.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1AndHttp2);
        });
        _app = builder.Build();
        _app.Run(HandleAsync);
        await _app.StartAsync().ConfigureAwait(false);
        Url = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _app.StopAsync(stop.Token).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var body = await ReadBodyAsync(request, context.RequestAborted).ConfigureAwait(false);
        var credential = CredentialOf(request);
        if (RecordRequests)
        {
            var headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            Requests.Enqueue(new SeenRequest(request.Method, request.Path + request.QueryString, headers, body, credential)
            {
                RawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? string.Empty,
            });
        }

        if (HttpMethods.IsTrace(request.Method))
        {
            await TraceAsync(context).ConfigureAwait(false);
            return;
        }

        if (Behaviour.Respond is { } respond)
        {
            await respond(context).ConfigureAwait(false);
            return;
        }

        var openAi = request.Path.StartsWithSegments("/v1/chat/completions") || request.Path.StartsWithSegments("/v1/models") || request.Path.StartsWithSegments("/v1/responses");
        var requestId = openAi
            ? "req_" + Interlocked.Increment(ref _sequence).ToString("x8", CultureInfo.InvariantCulture) + "oa"
            : "req_011CSim" + Interlocked.Increment(ref _sequence).ToString("D8", CultureInfo.InvariantCulture);
        context.Response.Headers[openAi ? "x-request-id" : "request-id"] = requestId;

        if (request.Path.StartsWithSegments("/echo") || request.Path.StartsWithSegments("/v1/echo"))
        {
            await EchoAsync(context, body).ConfigureAwait(false);
            return;
        }

        var scenario = request.Headers["sim-scenario"].ToString() is { Length: > 0 } s ? s : Behaviour.Scenario;
        if (credential is null)
        {
            await ErrorAsync(context, openAi, 401, "authentication_error", openAi ? "You didn't provide an API key." : "x-api-key header is required", openAi ? null : requestId, "missing_api_key").ConfigureAwait(false);
            return;
        }

        if (Behaviour.Accept is { } accept && !accept(credential))
        {
            await ErrorAsync(context, openAi, 401, openAi ? "invalid_request_error" : "authentication_error",
                openAi ? $"Incorrect API key provided: {Mask(credential)}. You can find your API key at https://platform.openai.com/account/api-keys." : "invalid x-api-key",
                openAi ? null : requestId, "invalid_api_key").ConfigureAwait(false);
            return;
        }

        switch (scenario)
        {
            case "ok":
                break;
            case "auth_error":
                await ErrorAsync(context, openAi, 401, "authentication_error", "invalid x-api-key", requestId, null).ConfigureAwait(false);
                return;
            case "oauth_not_supported":
                await ErrorAsync(context, false, 401, "authentication_error", "OAuth authentication is currently not supported.", requestId, null).ConfigureAwait(false);
                return;
            case "restricted":
                await ErrorAsync(context, false, 400, "invalid_request_error", "This credential is only authorized for use with Claude Code and cannot be used for other API requests.", requestId, null).ConfigureAwait(false);
                return;
            case "missing_scope":
                await ErrorAsync(context, false, 403, "permission_error", "OAuth token does not meet scope requirement user:sessions:claude_code", requestId, null).ConfigureAwait(false);
                return;
            case "bad_request":
                await ErrorAsync(context, openAi, 400, "invalid_request_error", "messages: Field required", openAi ? null : requestId, null).ConfigureAwait(false);
                return;
            case "permission":
                await ErrorAsync(context, false, 403, "permission_error", "Your API key does not have permission to use the specified resource.", requestId, null).ConfigureAwait(false);
                return;
            case "invalid_api_key":
                await ErrorAsync(context, true, 401, "invalid_request_error", $"Incorrect API key provided: {Mask(credential)}. You can find your API key at https://platform.openai.com/account/api-keys.", null, "invalid_api_key").ConfigureAwait(false);
                return;
            case "rate_limit":
                context.Response.Headers.RetryAfter = Behaviour.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                await ErrorAsync(context, openAi, 429, openAi ? "requests" : "rate_limit_error", openAi ? "Rate limit reached for requests" : "Number of request tokens has exceeded your per-minute rate limit", openAi ? null : requestId, openAi ? "rate_limit_exceeded" : null).ConfigureAwait(false);
                return;
            case "overloaded":
                context.Response.Headers.RetryAfter = Behaviour.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                await ErrorAsync(context, false, 529, "overloaded_error", "Overloaded", requestId, null).ConfigureAwait(false);
                return;
            case "server_error":
                await ErrorAsync(context, openAi, 500, openAi ? "server_error" : "api_error", "Internal server error", openAi ? null : requestId, null).ConfigureAwait(false);
                return;
            case "reset":
                context.Abort();
                return;
            case "hang":
                await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                return;
            case "reset_mid_stream":
                break;
            default:
                context.Response.StatusCode = 500;
                await context.Response.WriteAsync($"unknown sim-scenario '{scenario}'", context.RequestAborted).ConfigureAwait(false);
                return;
        }

        var json = body.Length == 0 ? null : JsonNode.Parse(body) as JsonObject;
        var model = json?["model"]?.GetValue<string>() ?? "unknown-model";
        var stream = json?["stream"]?.GetValue<bool>() ?? false;
        var usage = UsageFor(body, requestId, model);
        if (request.Path.StartsWithSegments("/v1/messages/count_tokens"))
        {
            await JsonAsync(context, 200, new JsonObject { ["input_tokens"] = Math.Max(1, body.Length / 4) }).ConfigureAwait(false);
        }
        else if (request.Path.StartsWithSegments("/v1/messages"))
        {
            var blocks = Blocks(json);
            if (stream)
            {
                await AnthropicStreamAsync(context, requestId, model, blocks, usage with { Api = "anthropic" }, scenario == "reset_mid_stream").ConfigureAwait(false);
            }
            else
            {
                await JsonAsync(context, 200, Reported(AnthropicMessage(model, blocks, usage), usage with { Api = "anthropic" })).ConfigureAwait(false);
            }
        }
        else if (request.Path.StartsWithSegments("/v1/chat/completions"))
        {
            if (stream)
            {
                await OpenAiStreamAsync(context, requestId, model, json?["stream_options"]?["include_usage"]?.GetValue<bool>() == true ? usage with { Api = "chat", CacheCreation = 0 } : null, scenario == "reset_mid_stream").ConfigureAwait(false);
            }
            else
            {
                await JsonAsync(context, 200, Reported(OpenAiCompletion(model, Text(), usage), usage with { Api = "chat", CacheCreation = 0 })).ConfigureAwait(false);
            }
        }
        else if (request.Path.StartsWithSegments("/v1/responses"))
        {
            var output = ResponseItems(Blocks(json));
            if (stream)
            {
                await ResponsesStreamAsync(context, requestId, model, output, usage with { Api = "responses", CacheCreation = 0 }, scenario == "reset_mid_stream").ConfigureAwait(false);
            }
            else
            {
                await JsonAsync(context, 200, Reported(ResponseObject(model, "completed", output, usage), usage with { Api = "responses", CacheCreation = 0 })).ConfigureAwait(false);
            }
        }
        else if (request.Path.StartsWithSegments("/v1/models"))
        {
            await JsonAsync(context, 200, new JsonObject { ["object"] = "list", ["data"] = new JsonArray(new JsonObject { ["id"] = "gpt-4o", ["object"] = "model" }) }).ConfigureAwait(false);
        }
        else
        {
            await ErrorAsync(context, openAi, 404, "not_found_error", $"Not found: {request.Path}", openAi ? null : requestId, null).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Usage as a provider would count this request, varied with it: input about a token per four bytes of body,
    /// cache writes and reads that differ from request to request, output a few tokens per delta.
    /// </summary>
    private SimUsage UsageFor(byte[] body, string requestId, string model) =>
        new(requestId, string.Empty, model, 7 + body.Length / 4, 3 + 2 * Behaviour.DeltaEvents, 5 + body.Length % 13, 100 * (body.Length % 7));

    /// <summary>Notes <paramref name="usage"/> as reported and returns <paramref name="answer"/>.</summary>
    private JsonObject Reported(JsonObject answer, SimUsage usage)
    {
        UsageReported.Enqueue(usage);
        return answer;
    }

    /// <summary>Anthropic's usage object: input without the cache, cache writes and reads apart.</summary>
    private static JsonObject AnthropicUsage(SimUsage u, long output) => new()
    {
        ["input_tokens"] = u.Input,
        ["cache_creation_input_tokens"] = u.CacheCreation,
        ["cache_read_input_tokens"] = u.CacheRead,
        ["cache_creation"] = new JsonObject { ["ephemeral_5m_input_tokens"] = u.CacheCreation, ["ephemeral_1h_input_tokens"] = 0 },
        ["output_tokens"] = output,
        ["service_tier"] = "standard",
    };

    /// <summary>OpenAI's chat completion usage: prompt tokens include the cached ones (OpenAI has no cache writes).</summary>
    private static JsonObject ChatUsage(SimUsage u) => new()
    {
        ["prompt_tokens"] = u.Input + u.CacheRead,
        ["completion_tokens"] = u.Output,
        ["total_tokens"] = u.Input + u.CacheRead + u.Output,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = u.CacheRead, ["audio_tokens"] = 0 },
        ["completion_tokens_details"] = new JsonObject { ["reasoning_tokens"] = 0, ["audio_tokens"] = 0 },
    };

    private string Text() => string.Join(' ', Enumerable.Range(0, Behaviour.DeltaEvents).Select(i => $"word{i}"));

    /// <summary>The answer's content blocks: the <see cref="SimBehaviour.Model"/>'s, each tool use given an id, or null
    /// for the default words.</summary>
    private List<JsonObject>? Blocks(JsonObject? request)
    {
        if (Behaviour.Model is not { } model || request is null)
        {
            return null;
        }

        var blocks = model(request).Select(b => (JsonObject)b.DeepClone()).ToList();
        foreach (var block in blocks.Where(b => b["type"]?.GetValue<string>() == "tool_use"))
        {
            block["id"] ??= "toolu_01Sim" + Guid.NewGuid().ToString("N")[..16];
            block["input"] ??= new JsonObject();
        }

        return blocks;
    }

    private static string StopReason(List<JsonObject>? blocks) =>
        blocks?.Any(b => b["type"]?.GetValue<string>() == "tool_use") == true ? "tool_use" : "end_turn";

    private static string? CredentialOf(HttpRequest request)
    {
        if (request.Headers["x-api-key"].ToString() is { Length: > 0 } key)
        {
            return key;
        }

        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7 ? authorization[7..] : null;
    }

    private static string Mask(string key) => key.Length <= 8 ? "***" : string.Concat(key.AsSpan(0, 3), "***", key.AsSpan(key.Length - 4));

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, ct).ConfigureAwait(false);
        return buffer.ToArray();
    }

    /// <summary>Answers TRACE as a server with tracing on does (RFC 9110, 9.3.8): the request it received, headers and
    /// all, as <c>message/http</c>.</summary>
    private static Task TraceAsync(HttpContext context)
    {
        var request = context.Request;
        var echo = new StringBuilder($"{request.Method} {context.Features.Get<IHttpRequestFeature>()?.RawTarget} {request.Protocol}\r\n");
        foreach (var (name, value) in request.Headers)
        {
            echo.Append(name).Append(": ").Append(value.ToString()).Append("\r\n");
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "message/http";
        return context.Response.WriteAsync(echo.Append("\r\n").ToString(), context.RequestAborted);
    }

    private static async Task EchoAsync(HttpContext context, byte[] body)
    {
        var headers = new JsonObject();
        foreach (var (name, value) in context.Request.Headers)
        {
            headers[name.ToLowerInvariant()] = value.ToString();
        }

        await JsonAsync(context, 200, new JsonObject
        {
            ["method"] = context.Request.Method,
            ["path"] = context.Request.Path.Value,
            ["query"] = context.Request.QueryString.Value,
            ["headers"] = headers,
            ["body_length"] = body.Length,
            ["body_sha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body)),
        }).ConfigureAwait(false);
    }

    private static Task JsonAsync(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }

    /// <summary>The provider's error shape: Anthropic's <c>{"type":"error","error":{...},"request_id":...}</c> or OpenAI's <c>{"error":{...}}</c>.</summary>
    private static Task ErrorAsync(HttpContext context, bool openAi, int status, string type, string message, string? requestId, string? code)
    {
        JsonObject body = openAi
            ? new JsonObject { ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = null, ["code"] = code } }
            : new JsonObject { ["type"] = "error", ["error"] = new JsonObject { ["type"] = type, ["message"] = message }, ["request_id"] = requestId };
        return JsonAsync(context, status, body);
    }

    private JsonObject AnthropicMessage(string model, List<JsonObject>? blocks, SimUsage usage) => new()
    {
        ["id"] = "msg_01Sim" + Guid.NewGuid().ToString("N")[..16],
        ["type"] = "message",
        ["role"] = "assistant",
        ["model"] = model,
        ["content"] = blocks is null ? new JsonArray(new JsonObject { ["type"] = "text", ["text"] = Text() }) : new JsonArray([.. blocks.Select(b => b.DeepClone())]),
        ["stop_reason"] = StopReason(blocks),
        ["stop_sequence"] = null,
        ["usage"] = AnthropicUsage(usage, usage.Output),
    };

    private static JsonObject OpenAiCompletion(string model, string text, SimUsage usage) => new()
    {
        ["id"] = "chatcmpl-Sim" + Guid.NewGuid().ToString("N")[..16],
        ["object"] = "chat.completion",
        ["created"] = 1_764_000_000,
        ["model"] = model,
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text },
            ["finish_reason"] = "stop",
        }),
        ["usage"] = ChatUsage(usage),
    };

    private async Task AnthropicStreamAsync(HttpContext context, string requestId, string model, List<JsonObject>? blocks, SimUsage usage, bool breakMidway)
    {
        var events = new List<(string Name, JsonObject Data)>
        {
            ("message_start", new JsonObject { ["type"] = "message_start", ["message"] = AnthropicStartMessage(model, usage) }),
        };
        if (blocks is null)
        {
            events.Add(("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = 0, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = string.Empty } }));
            events.Add(("ping", new JsonObject { ["type"] = "ping" }));
            for (var i = 0; i < Behaviour.DeltaEvents; i++)
            {
                events.Add(("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = 0, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = $"word{i} " } }));
            }

            events.Add(("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = 0 }));
        }
        else
        {
            events.Add(("ping", new JsonObject { ["type"] = "ping" }));
            for (var index = 0; index < blocks.Count; index++)
            {
                events.AddRange(AnthropicBlockEvents(index, blocks[index]));
            }
        }

        events.Add(("message_delta", new JsonObject { ["type"] = "message_delta", ["delta"] = new JsonObject { ["stop_reason"] = StopReason(blocks), ["stop_sequence"] = null }, ["usage"] = new JsonObject { ["output_tokens"] = usage.Output } }));
        events.Add(("message_stop", new JsonObject { ["type"] = "message_stop" }));
        UsageReported.Enqueue(usage);
        await StreamAsync(context, requestId, events.Select(e => $"event: {e.Name}\ndata: {e.Data.ToJsonString()}\n\n").ToList(), breakMidway).ConfigureAwait(false);
    }

    /// <summary>One content block as the real stream sends it: <c>content_block_start</c> with the block empty, its
    /// content in deltas (<c>text_delta</c> in two pieces, or a tool use's input as <c>input_json_delta</c> pieces of
    /// JSON), then <c>content_block_stop</c>.</summary>
    private static IEnumerable<(string Name, JsonObject Data)> AnthropicBlockEvents(int index, JsonObject block)
    {
        var toolUse = block["type"]?.GetValue<string>() == "tool_use";
        var start = toolUse
            ? new JsonObject { ["type"] = "tool_use", ["id"] = block["id"]!.DeepClone(), ["name"] = block["name"]!.DeepClone(), ["input"] = new JsonObject() }
            : new JsonObject { ["type"] = "text", ["text"] = string.Empty };
        yield return ("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = index, ["content_block"] = start });
        var content = toolUse ? block["input"]!.ToJsonString() : block["text"]?.GetValue<string>() ?? string.Empty;
        var half = content.Length / 2;
        foreach (var piece in new[] { content[..half], content[half..] })
        {
            var delta = toolUse
                ? new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = piece }
                : new JsonObject { ["type"] = "text_delta", ["text"] = piece };
            yield return ("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = index, ["delta"] = delta });
        }

        yield return ("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = index });
    }

    /// <summary>The message of <c>message_start</c>: no content yet, its input counted, one output token so far
    /// (the final count comes in <c>message_delta</c>).</summary>
    private JsonObject AnthropicStartMessage(string model, SimUsage usage)
    {
        var message = AnthropicMessage(model, [], usage);
        message["content"] = new JsonArray();
        message["stop_reason"] = null;
        message["usage"] = AnthropicUsage(usage, 1);
        return message;
    }

    /// <summary>A chat completion stream; with <paramref name="usage"/> (the request asked for
    /// <c>stream_options.include_usage</c>) every chunk has <c>"usage":null</c> and a last chunk without choices carries it.</summary>
    private async Task OpenAiStreamAsync(HttpContext context, string requestId, string model, SimUsage? usage, bool breakMidway)
    {
        var id = "chatcmpl-Sim" + Guid.NewGuid().ToString("N")[..16];
        JsonObject Chunk(JsonObject delta, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "chat.completion.chunk",
            ["created"] = 1_764_000_000,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
        };
        var chunks = new List<string> { $"data: {Chunk(new JsonObject { ["role"] = "assistant", ["content"] = string.Empty }, null).ToJsonString()}\n\n" };
        for (var i = 0; i < Behaviour.DeltaEvents; i++)
        {
            chunks.Add($"data: {Chunk(new JsonObject { ["content"] = $"word{i} " }, null).ToJsonString()}\n\n");
        }

        chunks.Add($"data: {Chunk([], "stop").ToJsonString()}\n\n");
        if (usage is not null)
        {
            for (var i = 0; i < chunks.Count; i++)
            {
                chunks[i] = chunks[i].Replace("}\n\n", ",\"usage\":null}\n\n", StringComparison.Ordinal);
            }

            var last = Chunk([], null);
            last["choices"] = new JsonArray();
            last["usage"] = ChatUsage(usage);
            chunks.Add($"data: {last.ToJsonString()}\n\n");
            UsageReported.Enqueue(usage);
        }

        chunks.Add("data: [DONE]\n\n");
        await StreamAsync(context, requestId, chunks, breakMidway).ConfigureAwait(false);
    }

    /// <summary>The output items of a Responses API answer: one <c>message</c> with the text blocks, then one
    /// <c>function_call</c> per tool use (status <c>completed</c>).</summary>
    private List<JsonObject> ResponseItems(List<JsonObject>? blocks)
    {
        blocks ??= [new JsonObject { ["type"] = "text", ["text"] = Text() }];
        var items = new List<JsonObject>();
        var text = string.Concat(blocks.Where(b => b["type"]?.GetValue<string>() == "text").Select(b => b["text"]?.GetValue<string>()));
        if (text.Length > 0)
        {
            items.Add(new JsonObject
            {
                ["id"] = "msg_Sim" + Guid.NewGuid().ToString("N")[..24],
                ["type"] = "message",
                ["status"] = "completed",
                ["role"] = "assistant",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray() }),
            });
        }

        foreach (var use in blocks.Where(b => b["type"]?.GetValue<string>() == "tool_use"))
        {
            var name = use["name"]!.GetValue<string>();
            var slash = name.LastIndexOf('/');
            var call = new JsonObject
            {
                ["id"] = "fc_Sim" + Guid.NewGuid().ToString("N")[..24],
                ["type"] = "function_call",
                ["status"] = "completed",
                ["arguments"] = use["input"]!.ToJsonString(),
                ["call_id"] = "call_Sim" + Guid.NewGuid().ToString("N")[..16],
                ["name"] = slash < 0 ? name : name[(slash + 1)..],
            };
            if (slash >= 0)
            {
                call["namespace"] = name[..slash];
            }

            items.Add(call);
        }

        return items;
    }

    /// <summary>A Responses API <c>response</c> object with <paramref name="status"/> and <paramref name="output"/>
    /// (usage only once it is completed).</summary>
    private static JsonObject ResponseObject(string model, string status, IEnumerable<JsonObject> output, SimUsage? usage, string? id = null)
    {
        var response = new JsonObject
        {
            ["id"] = id ?? "resp_Sim" + Guid.NewGuid().ToString("N")[..24],
            ["object"] = "response",
            ["created_at"] = 1_764_000_000,
            ["status"] = status,
            ["error"] = null,
            ["incomplete_details"] = null,
            ["model"] = model,
            ["output"] = new JsonArray([.. output.Select(o => o.DeepClone())]),
            ["parallel_tool_calls"] = true,
            ["usage"] = null,
        };
        if (status == "completed")
        {
            // The Responses API counts cached tokens inside input_tokens, as chat completions do.
            var u = usage!;
            response["usage"] = new JsonObject
            {
                ["input_tokens"] = u.Input + u.CacheRead,
                ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = u.CacheRead },
                ["output_tokens"] = u.Output,
                ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = 0 },
                ["total_tokens"] = u.Input + u.CacheRead + u.Output,
            };
        }

        return response;
    }

    /// <summary>
    /// A Responses API answer as the real stream sends it: <c>response.created</c>, <c>response.in_progress</c>; for
    /// a message <c>response.output_item.added</c> (the item empty), <c>response.content_part.added</c>,
    /// <c>response.output_text.delta</c> (the text in <see cref="SimBehaviour.DeltaEvents"/> pieces at most),
    /// <c>response.output_text.done</c>, <c>response.content_part.done</c>, <c>response.output_item.done</c>; for a
    /// function call <c>response.output_item.added</c> (arguments empty), <c>response.function_call_arguments.delta</c>
    /// (two pieces), <c>response.function_call_arguments.done</c>, <c>response.output_item.done</c>; then
    /// <c>response.completed</c> with every item. Each event has its <c>sequence_number</c>.
    /// </summary>
    private async Task ResponsesStreamAsync(HttpContext context, string requestId, string model, List<JsonObject> output, SimUsage usage, bool breakMidway)
    {
        var id = "resp_Sim" + Guid.NewGuid().ToString("N")[..24];
        var events = new List<JsonObject>
        {
            new() { ["type"] = "response.created", ["response"] = ResponseObject(model, "in_progress", [], null, id) },
            new() { ["type"] = "response.in_progress", ["response"] = ResponseObject(model, "in_progress", [], null, id) },
        };
        for (var index = 0; index < output.Count; index++)
        {
            var item = output[index];
            var itemId = item["id"]!.GetValue<string>();
            var added = (JsonObject)item.DeepClone();
            added["status"] = "in_progress";
            if (item["type"]!.GetValue<string>() == "message")
            {
                added["content"] = new JsonArray();
                events.Add(new() { ["type"] = "response.output_item.added", ["output_index"] = index, ["item"] = added });
                var text = item["content"]![0]!["text"]!.GetValue<string>();
                events.Add(new() { ["type"] = "response.content_part.added", ["item_id"] = itemId, ["output_index"] = index, ["content_index"] = 0, ["part"] = new JsonObject { ["type"] = "output_text", ["text"] = string.Empty, ["annotations"] = new JsonArray() } });
                foreach (var piece in Pieces(text, Math.Max(1, Behaviour.DeltaEvents)))
                {
                    events.Add(new() { ["type"] = "response.output_text.delta", ["item_id"] = itemId, ["output_index"] = index, ["content_index"] = 0, ["delta"] = piece });
                }

                events.Add(new() { ["type"] = "response.output_text.done", ["item_id"] = itemId, ["output_index"] = index, ["content_index"] = 0, ["text"] = text });
                events.Add(new() { ["type"] = "response.content_part.done", ["item_id"] = itemId, ["output_index"] = index, ["content_index"] = 0, ["part"] = item["content"]![0]!.DeepClone() });
            }
            else
            {
                added["arguments"] = string.Empty;
                events.Add(new() { ["type"] = "response.output_item.added", ["output_index"] = index, ["item"] = added });
                var arguments = item["arguments"]!.GetValue<string>();
                foreach (var piece in Pieces(arguments, 2))
                {
                    events.Add(new() { ["type"] = "response.function_call_arguments.delta", ["item_id"] = itemId, ["output_index"] = index, ["delta"] = piece });
                }

                events.Add(new() { ["type"] = "response.function_call_arguments.done", ["item_id"] = itemId, ["output_index"] = index, ["arguments"] = arguments });
            }

            events.Add(new() { ["type"] = "response.output_item.done", ["output_index"] = index, ["item"] = item.DeepClone() });
        }

        events.Add(new() { ["type"] = "response.completed", ["response"] = ResponseObject(model, "completed", output, usage, id) });
        UsageReported.Enqueue(usage);
        for (var i = 0; i < events.Count; i++)
        {
            events[i]["sequence_number"] = i;
        }

        await StreamAsync(context, requestId, events.Select(e => $"event: {e["type"]!.GetValue<string>()}\ndata: {e.ToJsonString()}\n\n").ToList(), breakMidway).ConfigureAwait(false);
    }

    /// <summary><paramref name="text"/> cut into at most <paramref name="count"/> non-empty pieces (one when it is empty).</summary>
    private static IEnumerable<string> Pieces(string text, int count)
    {
        if (text.Length == 0)
        {
            yield return text;
            yield break;
        }

        var size = (text.Length + count - 1) / count;
        for (var start = 0; start < text.Length; start += size)
        {
            yield return text.Substring(start, Math.Min(size, text.Length - start));
        }
    }

    private async Task StreamAsync(HttpContext context, string requestId, List<string> events, bool breakMidway)
    {
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
        for (var i = 0; i < events.Count; i++)
        {
            if (i > 0 && Behaviour.ChunkDelay > TimeSpan.Zero)
            {
                await Task.Delay(Behaviour.ChunkDelay, context.RequestAborted).ConfigureAwait(false);
            }

            if (breakMidway && i == events.Count / 2)
            {
                context.Abort();
                return;
            }

            await response.Body.WriteAsync(Encoding.UTF8.GetBytes(events[i]), context.RequestAborted).ConfigureAwait(false);
            await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            EventsSent.Enqueue((requestId, i, DateTimeOffset.UtcNow));
        }
    }
}
