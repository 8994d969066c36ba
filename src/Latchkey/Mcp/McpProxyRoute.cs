using System.Net.ServerSentEvents;
using System.Text;
using Latchkey.Gateway;
using Latchkey.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
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
/// process); a 401 causes one refresh and one resend (<see cref="UpstreamExchange"/>, through the policy the stdio
/// bridge uses too: <see cref="Tokens.RefreshAndResend"/>). The client's own
/// <c>Authorization</c> (its client key) is never forwarded, and the upstream's <c>WWW-Authenticate</c> is never
/// passed back, so an MCP client does not start an OAuth flow of its own behind Latchkey's back.</para>
/// <para><b>Step-up.</b> A 403 <c>insufficient_scope</c> is recorded (<see cref="McpStepUp"/>) and answered with a
/// JSON-RPC error naming the missing scopes and <c>latchkey login NAME</c>; it is never retried.</para>
/// </remarks>
internal sealed partial class McpProxyRoute(AgentRequest agents, UpstreamExchange exchange, ICredentialStore store, TimeProvider time, GatewayOptions options, ILogger<McpProxyRoute> log)
{
    /// <summary>Maps the route (the gateway's one line for MCP).</summary>
    public void Map(IEndpointRouteBuilder app)
    {
        app.Map("/mcp/{server}/{**rest}", HandleAsync);
        app.Map("/mcp/{server}", HandleAsync);
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

        if (!Uri.TryCreate(m.Upstream, UriKind.Absolute, out var upstream))
        {
            await GatewayErrors.WriteAsync(context, 502, "upstream_url_refused", $"The stored URL of the MCP server '{name}' was refused before anything was sent: {Http.UrlPolicy.Describe(Http.UrlVerdict.NotAbsolute, m.Upstream)}",
                $"Add the server again: latchkey mcp remove {name}, then latchkey mcp add {name} URL", name).ConfigureAwait(false);
            return;
        }

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
                AuditFacts.Of(context)?.Note(outcome);
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
                    : outcome.RefreshSkipped is { } skipped ? ("token_rejected", $"The MCP server '{name}' refused the token. {skipped.Message}")
                    : ("token_rejected", $"The MCP server '{name}' refused the token even after a refresh.");
                if (fresh is not null)
                {
                    await store.RecordUpstreamFailureAsync(name, new UpstreamFailure(code, message, $"latchkey login {name}", 401, null, time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
                }

                AuditFacts.Of(context)?.Note(outcome);
                await WriteRpcErrorAsync(context, body, 401, code, message + $" Run: latchkey login {name}", $"latchkey login {name}").ConfigureAwait(false);
                return;
            }

            response.Headers.Remove("WWW-Authenticate");
            if (legacyStream && response.IsSuccessStatusCode && response.Content.Headers.ContentType?.MediaType == "text/event-stream")
            {
                AuditFacts.Of(context)?.Note(outcome);
                await CopyLegacyStreamAsync(context, response, name, upstream).ConfigureAwait(false);
                return;
            }
        }

        await exchange.WriteAsync(context, outcome, [new("latchkey-credential", name)]).ConfigureAwait(false);
    }

    /// <summary>Answers a request with a JSON-RPC error (HTTP 200, so every MCP client shows the message), or, for a
    /// notification or batch, with Latchkey's plain error at <paramref name="status"/>.</summary>
    private static async Task WriteRpcErrorAsync(HttpContext context, RequestBody body, int status, string code, string message, string fix)
    {
        if (McpStepUp.ErrorResponse(body.Memory.Span, message) is { } rpc)
        {
            AuditFacts.Of(context)?.Reason = code;
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            context.Response.Headers[GatewayErrors.DiagnosticHeader] = code;
            await context.Response.Body.WriteAsync(rpc, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        await GatewayErrors.WriteAsync(context, status, code, message, fix).ConfigureAwait(false);
    }

    /// <summary>
    /// Streams a legacy SSE stream event by event (read by <see cref="Http.SseReader"/>: the BCL's parser, each event
    /// bounded; written again by <see cref="SseFormatter"/>), with the <c>endpoint</c> event's URL rewritten to
    /// <c>/mcp/NAME/~PATH?QUERY</c>. The agent's answer is held until the first <c>endpoint</c> event has been read and checked, so a stream that is broken, oversized, or names an
    /// endpoint that is not a URL on the server's own origin is answered <c>502 mcp_stream_refused</c> saying why;
    /// after that, such an event ends the stream, with an SSE comment saying why.
    /// </summary>
    private async Task CopyLegacyStreamAsync(HttpContext context, HttpResponseMessage response, string name, Uri upstream)
    {
        var ct = context.RequestAborted;
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var events = Http.SseReader.ReadAsync(stream, ct).GetAsyncEnumerator(ct);
        await using (events.ConfigureAwait(false))
        {
            var held = new List<SseItem<string>>();
            string? refusal = null;
            try
            {
                while (true)
                {
                    if (!await events.MoveNextAsync().ConfigureAwait(false))
                    {
                        refusal = "its event stream ended before it sent an 'endpoint' event";
                        break;
                    }

                    if (events.Current.EventType == "endpoint")
                    {
                        held.Add(Rewrite(events.Current, name, upstream, out refusal));
                        break;
                    }

                    if (held.Count == MaxEventsBeforeEndpoint)
                    {
                        refusal = $"it sent {MaxEventsBeforeEndpoint} events without an 'endpoint' event";
                        break;
                    }

                    held.Add(events.Current);
                }
            }
            catch (Http.SseEventTooLargeException ex)
            {
                refusal = ex.Message;
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException && !ct.IsCancellationRequested)
            {
                refusal = "its event stream broke before it sent an 'endpoint' event";
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }

            if (refusal is not null)
            {
                Log.StreamRefused(log, name, refusal);
                await GatewayErrors.WriteAsync(context, 502, "mcp_stream_refused", $"The MCP server '{name}' was not followed: {refusal}.",
                    "The server is broken or hostile; check its URL ('latchkey status') with its operator. Nothing was sent to any other origin.", name).ConfigureAwait(false);
                return;
            }

            var agent = context.Response;
            agent.StatusCode = 200;
            agent.ContentType = "text/event-stream";
            agent.Headers.CacheControl = "no-cache";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            await agent.StartAsync(ct).ConfigureAwait(false);
            try
            {
                await SseFormatter.WriteAsync(RelayAsync(held, events, name, upstream), agent.Body, ct).ConfigureAwait(false);
            }
            catch (McpStreamRefusedException ex)
            {
                Log.StreamRefused(log, name, ex.Message);
                AuditFacts.Of(context)?.Reason = "mcp_stream_refused";
                await EndWithCommentAsync(context, ex.Message).ConfigureAwait(false);
            }
            catch (Http.SseEventTooLargeException ex)
            {
                Log.StreamRefused(log, name, ex.Message);
                AuditFacts.Of(context)?.Reason = "mcp_stream_refused";
                await EndWithCommentAsync(context, ex.Message).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
            {
                context.Abort();
            }
        }
    }

    /// <summary>The held events, then the rest of the stream, each later <c>endpoint</c> event checked and rewritten too.</summary>
    private static async IAsyncEnumerable<SseItem<string>> RelayAsync(List<SseItem<string>> held, IAsyncEnumerator<SseItem<string>> events, string name, Uri upstream)
    {
        foreach (var item in held)
        {
            yield return item;
        }

        while (await events.MoveNextAsync().ConfigureAwait(false))
        {
            var item = events.Current;
            if (item.EventType == "endpoint")
            {
                item = Rewrite(item, name, upstream, out var problem);
                if (problem is not null)
                {
                    throw new McpStreamRefusedException($"The MCP server '{name}' was not followed further: {problem}.");
                }
            }

            yield return item;
        }
    }

    /// <summary>The endpoint event with its URL pointing back through the proxy, or <paramref name="problem"/> set.</summary>
    private static SseItem<string> Rewrite(SseItem<string> item, string name, Uri upstream, out string? problem)
    {
        if (McpSse.ResolveEndpoint(upstream, item.Data, out var why) is not { } endpoint)
        {
            problem = why;
            return item;
        }

        problem = null;
        return new SseItem<string>($"/mcp/{name}/~{endpoint.PathAndQuery}", "endpoint") { EventId = item.EventId, ReconnectionInterval = item.ReconnectionInterval };
    }

    /// <summary>Ends a stream already under way with an SSE comment saying why (clients ignore comments; anyone reading
    /// the raw stream sees it). The stream then ends cleanly, so the comment is certain to arrive before the end.</summary>
    private static async Task EndWithCommentAsync(HttpContext context, string why)
    {
        try
        {
            var line = ": latchkey: " + why.ReplaceLineEndings(" ") + "\n\n";
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(line), context.RequestAborted).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            context.Abort();
        }
    }

    /// <summary>How many events a legacy stream may send before its <c>endpoint</c> event (normally it is the first).</summary>
    private const int MaxEventsBeforeEndpoint = 16;

    /// <summary>A legacy stream that went bad after it had started.</summary>
    private sealed class McpStreamRefusedException(string message) : Exception(message);

    private static partial class Log
    {
        [LoggerMessage(EventId = 500, Level = LogLevel.Warning, Message = "MCP server '{Server}' asked for more scope ({Scopes}); recorded, the client was told to run 'latchkey login {Server}'")]
        public static partial void StepUp(ILogger logger, string server, string scopes);

        [LoggerMessage(EventId = 501, Level = LogLevel.Warning, Message = "MCP server '{Server}': the legacy event stream was refused, no credential was sent anywhere else: {Reason}")]
        public static partial void StreamRefused(ILogger logger, string server, string reason);
    }
}
