using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Latchkey.Testing;

/// <summary>
/// The smallest OpenAI Responses API (<c>POST /v1/responses</c>, streamed as server-sent events) a headless Codex runs
/// against, on 127.0.0.1: the simulated model asks for the MCP tools a test lists, one per turn, then answers
/// <c>RESULTS: </c> and the tools' outputs joined by <c> | </c>, so the final answer carries what the MCP server
/// returned. Codex offers an MCP server's tools as a <c>namespace</c> tool (<c>mcp__SERVER</c>) holding function
/// tools; a call names the function and its namespace. A tool Codex does not offer is answered in text, naming what
/// it does offer. It accepts any credential: what it must see is a test's business (<see cref="Requests"/>).
/// </summary>
internal sealed class ResponsesModelStub : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly (string Name, JsonObject Arguments)[] _tools;
    private readonly Task _serving;

    public ResponsesModelStub(params (string Name, JsonObject Arguments)[] tools)
    {
        _tools = tools;
        var port = FreePort();
        BaseUrl = $"http://127.0.0.1:{port}/v1";
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _serving = Task.Run(ServeAsync);
    }

    /// <summary>The provider's base URL (Codex's <c>base_url</c>), ending in <c>/v1</c>.</summary>
    public string BaseUrl { get; }

    /// <summary>Every request body received, in order.</summary>
    public List<JsonObject> Requests { get; } = [];

    public void Dispose()
    {
        _listener.Close();
        try
        {
            _serving.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var response = context.Response;
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            var body = JsonNode.Parse(await reader.ReadToEndAsync()) as JsonObject ?? [];
            lock (Requests)
            {
                Requests.Add(body);
            }

            if (context.Request.HttpMethod != "POST" || !context.Request.Url!.AbsolutePath.EndsWith("/responses", StringComparison.Ordinal))
            {
                response.StatusCode = 404;
                continue;
            }

            var item = Answer(body, Requests.Count);
            var events = new StringBuilder();
            void Event(string type, JsonObject data)
            {
                data["type"] = type;
                events.Append("event: ").Append(type).Append('\n').Append("data: ").Append(data.ToJsonString()).Append("\n\n");
            }

            var id = $"resp_{Requests.Count}";
            Event("response.created", new JsonObject { ["response"] = new JsonObject { ["id"] = id } });
            Event("response.output_item.added", new JsonObject { ["output_index"] = 0, ["item"] = item.DeepClone() });
            Event("response.output_item.done", new JsonObject { ["output_index"] = 0, ["item"] = item.DeepClone() });
            Event("response.completed", new JsonObject
            {
                ["response"] = new JsonObject
                {
                    ["id"] = id,
                    ["output"] = new JsonArray(item.DeepClone()),
                    ["usage"] = new JsonObject
                    {
                        ["input_tokens"] = 10,
                        ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = 0 },
                        ["output_tokens"] = 5,
                        ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = 0 },
                        ["total_tokens"] = 15,
                    },
                },
            });
            var bytes = Encoding.UTF8.GetBytes(events.ToString());
            response.ContentType = "text/event-stream";
            response.ContentLength64 = bytes.Length;
            await response.OutputStream.WriteAsync(bytes);
        }
    }

    /// <summary>The model's output item for one request: the next tool call, or the final message.</summary>
    private JsonObject Answer(JsonObject request, int turn)
    {
        var results = (request["input"] as JsonArray ?? [])
            .Where(i => i?["type"]?.GetValue<string>() == "function_call_output")
            .Select(i => i!["output"] switch
            {
                JsonValue v => v.GetValue<string>(),
                JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>() ?? string.Empty)),
                _ => string.Empty,
            })
            .ToList();
        if (results.Count >= _tools.Length)
        {
            return Message("RESULTS: " + string.Join(" | ", results));
        }

        var (name, arguments) = _tools[results.Count];
        var offered = (request["tools"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        var space = offered.FirstOrDefault(t => t["type"]?.GetValue<string>() == "namespace"
            && (t["tools"] as JsonArray ?? []).Any(f => f?["name"]?.GetValue<string>() == name));
        if (space is null)
        {
            return Message($"NO TOOL {name}; offered: {string.Join(", ", offered.Select(t => t["name"]?.GetValue<string>()))}");
        }

        return new JsonObject
        {
            ["type"] = "function_call",
            ["id"] = $"fc_{turn}",
            ["call_id"] = $"call_{turn}",
            ["name"] = name,
            ["namespace"] = space["name"]!.GetValue<string>(),
            ["arguments"] = arguments.ToJsonString(),
        };
    }

    private static JsonObject Message(string text) => new()
    {
        ["type"] = "message",
        ["role"] = "assistant",
        ["id"] = "msg_1",
        ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray() }),
    };
}
