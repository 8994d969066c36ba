using System.Text;
using Latchkey.Gateway;
using Latchkey.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Latchkey.Mcp;

/// <summary>
/// <c>/mcp/{server}</c>: an authenticated MCP proxy for local clients holding a client key. Streamable HTTP is
/// passed through method for method — POST (a JSON or an SSE answer, streamed event by event), the GET stream and
/// DELETE of a session — with <c>Mcp-Session-Id</c>, <c>MCP-Protocol-Version</c> and <c>Last-Event-ID</c> unchanged.
/// For a server on the legacy HTTP+SSE transport, <c>GET /mcp/NAME</c> opens its event stream, and the URL in the
/// stream's <c>endpoint</c> event is rewritten to <c>/mcp/NAME/~PATH?QUERY</c> so the client's POSTs come back through
/// the proxy (the endpoint must be on the server's own origin: no credential crosses origins).
/// </summary>
/// <remarks>
/// <para><b>Tokens.</b> The bearer token comes from the token engine (refreshed ahead of expiry, once for every
/// process); a 401 causes one refresh and one retry (<see cref="UpstreamExchange"/>). The client's own
/// <c>Authorization</c> (its client key) is never forwarded, and the upstream's <c>WWW-Authenticate</c> is never
/// passed back, so an MCP client does not start an OAuth flow of its own behind Latchkey's back.</para>
/// <para><b>Step-up.</b> A 403 <c>insufficient_scope</c> is recorded (<see cref="McpStepUp"/>) and answered with a
/// JSON-RPC error naming the missing scopes and <c>latchkey login NAME</c>; it is never retried.</para>
/// </remarks>
internal sealed partial class McpProxyRoute(AgentRequest agents, UpstreamExchange exchange, ICredentialStore store, TimeProvider time, GatewayOptions options, ILogger<McpProxyRoute> log)
{
    /// <summary>Maps the route (the gateway's one line for MCP).</summary>
    public static void Map(WebApplication app)
    {
        var route = ActivatorUtilities.CreateInstance<McpProxyRoute>(app.Services);
        app.Map("/mcp/{server}/{**rest}", route.HandleAsync);
        app.Map("/mcp/{server}", route.HandleAsync);
    }

    public async Task HandleAsync(HttpContext context)
    {
        var name = (string)context.Request.RouteValues["server"]!;
        if (await agents.CheckTargetAsync(context, "mcp", name).ConfigureAwait(false) is not { } rest
            || !await agents.AuthorizeAsync(context, name).ConfigureAwait(false))
        {
            return;
        }

        if (await agents.ResolveAsync(context, name).ConfigureAwait(false) is not { } credential)
        {
            return;
        }

        var m = credential.Record.Metadata;
        if (m.McpTransport is null || m.Upstream is null)
        {
            await agents.RefuseAsync(context, 404, "not_an_mcp_server", $"'{name}' is not an MCP server added with 'latchkey mcp add'.", $"Use /c/{name}/... for a plain credential, or add the server: latchkey mcp add NAME URL").ConfigureAwait(false);
            return;
        }

        var upstream = new Uri(m.Upstream);
        string pathAndQuery;
        var legacyStream = false;
        if (rest.StartsWith("/~/", StringComparison.Ordinal) && m.McpTransport == McpTransports.Sse)
        {
            // A legacy message POST: the path and query the server's endpoint event named, on its own origin.
            credential = credential with { Record = credential.Record with { Metadata = m with { Upstream = upstream.GetLeftPart(UriPartial.Authority) } } };
            pathAndQuery = rest[2..];
        }
        else if (rest.Length == 0 || rest[0] == '?')
        {
            pathAndQuery = rest;
            legacyStream = m.McpTransport == McpTransports.Sse && HttpMethods.IsGet(context.Request.Method);
        }
        else
        {
            await agents.RefuseAsync(context, 404, "mcp_path_unknown", $"The MCP proxy serves /mcp/{name} itself{(m.McpTransport == McpTransports.Sse ? $" and /mcp/{name}/~/... (the legacy transport's message URL)" : string.Empty)}; '{context.Request.Path}' is neither.", $"Point the MCP client at /mcp/{name}.").ConfigureAwait(false);
            return;
        }

        using var body = await RequestBody.ReadAsync(context.Request, options.RetryBodyLimit, context.RequestAborted).ConfigureAwait(false);
        using var outcome = await exchange.SendAsync(context, credential, pathAndQuery, body).ConfigureAwait(false);
        if (outcome.Response is { } response)
        {
            if (McpStepUp.Needed(response) is { } scopes)
            {
                var message = await McpStepUp.RecordAsync(store, credential.Record, scopes, time, context.RequestAborted).ConfigureAwait(false);
                var asked = string.Join(' ', scopes);
                Log.StepUp(log, name, asked);
                await WriteRpcErrorAsync(context, body, 403, McpStepUp.Code, message, $"latchkey login {name}").ConfigureAwait(false);
                return;
            }

            if (response.StatusCode == System.Net.HttpStatusCode.Unauthorized)
            {
                // Still refused after one refresh and one retry: say why, never pass the server's challenge on.
                var fresh = await store.GetAsync(name, CancellationToken.None).ConfigureAwait(false);
                var wrongAudience = McpStepUp.WrongAudience(credential.Secret, m.Resource);
                var (code, message) = wrongAudience
                    ? ("wrong_audience", $"The MCP server '{name}' refused the token: the authorization server issued it for another audience than {m.Resource}.")
                    : ("token_rejected", $"The MCP server '{name}' refused the token even after a refresh.");
                if (fresh is not null)
                {
                    await store.RecordUpstreamFailureAsync(name, new UpstreamFailure(code, message, $"latchkey login {name}", 401, null, time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
                }

                await WriteRpcErrorAsync(context, body, 401, code, message + $" Run: latchkey login {name}", $"latchkey login {name}").ConfigureAwait(false);
                return;
            }

            response.Headers.Remove("WWW-Authenticate");
            if (legacyStream && response.IsSuccessStatusCode && response.Content.Headers.ContentType?.MediaType == "text/event-stream")
            {
                await CopyLegacyStreamAsync(context, response, name, upstream).ConfigureAwait(false);
                return;
            }
        }

        await UpstreamExchange.WriteAsync(context, outcome, [new("latchkey-credential", name)]).ConfigureAwait(false);
    }

    /// <summary>Answers a request with a JSON-RPC error (HTTP 200, so every MCP client shows the message), or, for a
    /// notification or batch, with Latchkey's plain error at <paramref name="status"/>.</summary>
    private static async Task WriteRpcErrorAsync(HttpContext context, RequestBody body, int status, string code, string message, string fix)
    {
        if (McpStepUp.ErrorResponse(body.Memory.Span, message) is { } rpc)
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            context.Response.Headers[GatewayErrors.DiagnosticHeader] = code;
            await context.Response.Body.WriteAsync(rpc, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        await GatewayErrors.WriteAsync(context, status, code, message, fix).ConfigureAwait(false);
    }

    /// <summary>Streams a legacy SSE stream line by line, rewriting the <c>endpoint</c> event's URL through the proxy.</summary>
    private async Task CopyLegacyStreamAsync(HttpContext context, HttpResponseMessage response, string name, Uri upstream)
    {
        var agent = context.Response;
        agent.StatusCode = 200;
        agent.ContentType = "text/event-stream";
        agent.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await agent.StartAsync(context.RequestAborted).ConfigureAwait(false);
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            string? eventName = null;
            while (await reader.ReadLineAsync(context.RequestAborted).ConfigureAwait(false) is { } line)
            {
                var output = line;
                if (line.StartsWith("event:", StringComparison.Ordinal))
                {
                    eventName = line[6..].Trim();
                }
                else if (line.Length == 0)
                {
                    eventName = null;
                }
                else if (eventName == "endpoint" && line.StartsWith("data:", StringComparison.Ordinal))
                {
                    var endpoint = new Uri(upstream, line[5..].Trim());
                    if (!string.Equals(endpoint.GetLeftPart(UriPartial.Authority), upstream.GetLeftPart(UriPartial.Authority), StringComparison.OrdinalIgnoreCase))
                    {
                        var origin = endpoint.GetLeftPart(UriPartial.Authority);
                        Log.ForeignEndpoint(log, name, origin);
                        context.Abort();
                        return;
                    }

                    output = $"data: /mcp/{name}/~{endpoint.PathAndQuery}";
                }

                await agent.WriteAsync(output + "\n", context.RequestAborted).ConfigureAwait(false);
                if (line.Length == 0)
                {
                    await agent.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
        {
            context.Abort();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 500, Level = LogLevel.Warning, Message = "MCP server '{Server}' asked for more scope ({Scopes}); recorded, the client was told to run 'latchkey login {Server}'")]
        public static partial void StepUp(ILogger logger, string server, string scopes);

        [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "MCP server '{Server}' named a message endpoint on another origin ({Origin}); the stream was closed, no credential was sent there")]
        public static partial void ForeignEndpoint(ILogger logger, string server, string origin);
    }
}
