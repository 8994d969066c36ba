using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// <c>/r/{router}/v1/messages</c>, <c>/v1/messages/count_tokens</c> and <c>/v1/chat/completions</c>: picks the
/// route for the requested model, rewrites the model name, and tries the route's targets in order.
/// </summary>
/// <remarks>
/// <para>Moves to the next target on a connection failure, a timeout, a 5xx, 429 or 529; on a failure of the
/// credential (401, 403, a credential restricted to its provider's own client) only after it is recorded in the
/// credential's status and the log; never on another 4xx, which is about the request and goes back to the agent
/// as it is. No silent fall-through: every answer names the credential that served it
/// (<c>latchkey-credential</c>) and every attempt (<c>latchkey-attempts</c>).</para>
/// <para>A 429 or 529 with <c>retry-after</c> puts the target in a cool-down that every request respects; when all
/// targets are cooling down and the shortest wait is short (<see cref="GatewayOptions.ShortRetryAfter"/>), the
/// router waits it out instead of failing.</para>
/// </remarks>
internal sealed class ModelRouterRoute(AgentRequest agents, UpstreamExchange exchange, RoutesFile routes, GatewayOptions options, TimeProvider time, ILogger<ModelRouterRoute> log)
{
    private static readonly string[] Endpoints = ["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions"];
    private readonly ConcurrentDictionary<string, DateTimeOffset> _coolingUntil = new(StringComparer.Ordinal);

    /// <summary>The longest model name a router reads (longer is refused: no model is named like that).</summary>
    internal const int MaxModelBytes = 1024;

    /// <summary>What <see cref="FindModel"/> found.</summary>
    internal enum ModelLookup
    {
        Found,
        Missing,
        Duplicate,
        TooLong,
    }

    public async Task HandleAsync(HttpContext context)
    {
        var routerName = (string)context.Request.RouteValues["router"]!;
        var prefix = "/r/" + routerName;
        if (await agents.CheckTargetAsync(context, "r", routerName).ConfigureAwait(false) is not { } pathAndQuery)
        {
            return;
        }

        var path = pathAndQuery.Split('?', 2)[0];
        if (!Endpoints.Contains(path, StringComparer.Ordinal) || !HttpMethods.IsPost(context.Request.Method))
        {
            await agents.RefuseAsync(context, 404, "route_not_found", $"A router serves POST {string.Join(", ", Endpoints)}; this request is {context.Request.Method} {path}.", $"Use {prefix}/v1/messages or {prefix}/v1/chat/completions.").ConfigureAwait(false);
            return;
        }

        if (!await agents.AuthorizeAsync(context, routerName).ConfigureAwait(false))
        {
            return;
        }

        var (document, fileError) = routes.Current();
        if (!document.Routers.TryGetValue(routerName, out var router))
        {
            await agents.RefuseAsync(context, 404, "router_not_found",
                fileError ?? $"No router is named '{routerName}' in {routes.Path} (routers: {(document.Routers.Count == 0 ? "none" : string.Join(", ", document.Routers.Keys))}).",
                "Add it to routes.json (docs/gateway.md shows the format).").ConfigureAwait(false);
            return;
        }

        // Read whole (a router needs the model before it can choose), but never more than the limit, declared
        // length or not: a chunked body is counted as it arrives and refused as soon as it passes the limit.
        using var body = await RequestBody.ReadAllAsync(context.Request, options.RouterBodyLimit, context.RequestAborted).ConfigureAwait(false);
        if (body is null)
        {
            context.Response.Headers.Connection = "close"; // the rest of the body is not read
            var declared = context.Request.ContentLength is { } length ? $" ({length} bytes)" : string.Empty;
            await agents.RefuseAsync(context, 413, "body_too_large", $"The request body{declared} is larger than a router reads ({options.RouterBodyLimit} bytes).", "Send it to a credential route (/c/NAME/...) instead, which streams any size.").ConfigureAwait(false);
            return;
        }

        var (lookup, model, start, end) = FindModel(body.Content);
        if (lookup != ModelLookup.Found)
        {
            var message = lookup switch
            {
                ModelLookup.Duplicate => "The request body names \"model\" more than once; a router needs exactly one.",
                ModelLookup.TooLong => $"The request body's \"model\" is longer than {MaxModelBytes} bytes.",
                _ => "A router needs a JSON request body with a \"model\" string.",
            };
            await agents.RefuseAsync(context, 400, "model_missing", message, "Send the model name in the body, once, as the Anthropic and OpenAI APIs expect.").ConfigureAwait(false);
            return;
        }

        var route = router.Routes.FirstOrDefault(r => r.Matches(model));
        if (route is null)
        {
            await agents.RefuseAsync(context, 400, "model_not_routed", $"Router '{routerName}' has no route for model '{model}' (patterns: {string.Join(", ", router.Routes.Select(r => r.Model))}).", "Add a route for it to routes.json, or ask for a routed model.").ConfigureAwait(false);
            return;
        }

        IEnumerable<RouteTarget> targets = route.Targets;
        if (context.Request.Headers["latchkey-credential"].ToString() is { Length: > 0 } forced)
        {
            targets = route.Targets.Where(t => t.Credential == forced).ToList();
            if (!targets.Any())
            {
                await agents.RefuseAsync(context, 400, "credential_not_in_route", $"'latchkey-credential: {forced}' is not a target of the route for '{model}' (targets: {string.Join(", ", route.Targets.Select(t => t.Credential))}).", "Name one of those, or drop the header.").ConfigureAwait(false);
                return;
            }
        }

        await RunTargetsAsync(context, routerName, body, (model, start, end), targets.ToList(), pathAndQuery).ConfigureAwait(false);
    }

    /// <summary>
    /// Finds the top-level <c>"model"</c> string of a JSON body with a forward-only reader (no document tree is
    /// built), and where its token (quotes included) starts and ends, so it can be replaced in place. The whole
    /// body is read, so a body that is not one well-formed JSON object is <see cref="ModelLookup.Missing"/>; so is a
    /// <c>model</c> that has no string form (an escaped lone surrogate, <c>"\ud800x"</c>).
    /// </summary>
    internal static (ModelLookup Lookup, string Model, long Start, long End) FindModel(ReadOnlySequence<byte> json)
    {
        var (lookup, model, start, end) = (ModelLookup.Missing, string.Empty, 0L, 0L);
        var found = false;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return (ModelLookup.Missing, string.Empty, 0, 0);
            }

            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1 || !reader.ValueTextEquals("model"u8))
                {
                    continue;
                }

                if (found)
                {
                    lookup = ModelLookup.Duplicate; // keep reading: a malformed body is still Missing
                }

                found = true;
                reader.Read();
                if (lookup == ModelLookup.Duplicate || reader.TokenType != JsonTokenType.String)
                {
                    continue;
                }

                if ((reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length) > MaxModelBytes)
                {
                    lookup = ModelLookup.TooLong;
                    continue;
                }

                (lookup, model, start, end) = (ModelLookup.Found, reader.GetString()!, reader.TokenStartIndex, reader.BytesConsumed);
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: GetString on a value whose escapes make no valid UTF-16 (a lone surrogate)
            return (ModelLookup.Missing, string.Empty, 0, 0);
        }

        return (lookup, model, start, end);
    }

    private async Task RunTargetsAsync(HttpContext context, string routerName, RequestBody body, (string Name, long Start, long End) model, List<RouteTarget> targets, string pathAndQuery)
    {
        var attempts = new List<string>();
        ExchangeOutcome? last = null;
        try
        {
            var order = await OrderAsync(targets, context.RequestAborted).ConfigureAwait(false);
            foreach (var target in order)
            {
                if (await agents.ResolveQuietlyAsync(target.Credential, context.RequestAborted).ConfigureAwait(false) is not { } credential)
                {
                    attempts.Add($"{target.Credential}=not-usable");
                    continue;
                }

                // The agent's bytes, with only the model's value replaced when this target knows it by another name.
                using var rewritten = target.Model is { } other && other != model.Name ? body.Replace(model.Start, model.End, JsonString(other)) : null;
                if (AuditFacts.Of(context) is { } facts)
                {
                    (facts.Metered, facts.RequestModel) = (true, target.Model ?? model.Name);
                }

                var outcome = await exchange.SendAsync(context, credential, pathAndQuery, rewritten ?? body).ConfigureAwait(false);
                attempts.Add($"{target.Credential}={outcome.Status}");
                last?.Dispose();
                last = outcome;
                if (outcome.Error == ForwarderError.Canceled)
                {
                    return;
                }

                if (!ShouldFallBack(outcome))
                {
                    break;
                }

                if (outcome.Diagnosis?.RetryAfter is { } wait && outcome.Status is 429 or 529)
                {
                    _coolingUntil[target.Credential] = time.GetUtcNow() + wait;
                }

                GatewayLog.FallingBack(log, routerName, target.Credential, outcome.Status);
            }

            if (last is null)
            {
                context.Response.Headers["latchkey-attempts"] = string.Join(", ", attempts);
                await GatewayErrors.WriteAsync(context, 503, "no_usable_target", $"No target of router '{routerName}' for '{model.Name}' is usable right now ({string.Join(", ", attempts)}).", "'latchkey status' says why each credential is not usable.").ConfigureAwait(false);
                return;
            }

            await exchange.WriteAsync(context, last, [new("latchkey-credential", last.Credential), new("latchkey-attempts", string.Join(", ", attempts))]).ConfigureAwait(false);
        }
        finally
        {
            last?.Dispose();
        }
    }

    /// <summary>A string as a JSON token, quotes included.</summary>
    private static byte[] JsonString(string value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStringValue(value);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Targets not cooling down first, in their order; if all are, waits out a short cool-down.</summary>
    private async Task<List<RouteTarget>> OrderAsync(List<RouteTarget> targets, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var ready = targets.Where(t => !_coolingUntil.TryGetValue(t.Credential, out var until) || until <= now).ToList();
        if (ready.Count > 0)
        {
            return ready;
        }

        var soonest = targets.Select(t => _coolingUntil.TryGetValue(t.Credential, out var until) ? until : now).Min();
        if (soonest - now <= options.ShortRetryAfter)
        {
            await Task.Delay(soonest - now, time, ct).ConfigureAwait(false);
        }

        return targets;
    }

    /// <summary>
    /// Load and reachability failures move on; so do failures of the credential itself (401, 403, a credential
    /// its provider restricts), which <see cref="UpstreamExchange"/> has recorded in status and the log by now.
    /// Any other 4xx is about the request and goes back to the agent.
    /// </summary>
    private static bool ShouldFallBack(ExchangeOutcome outcome) =>
        outcome.Response is null || outcome.Status is 429 or >= 500 || outcome.Diagnosis is { IsCredentialFailure: true };
}
