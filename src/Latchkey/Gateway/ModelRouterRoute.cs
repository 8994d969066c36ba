using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
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

    public async Task HandleAsync(HttpContext context)
    {
        var routerName = (string)context.Request.RouteValues["router"]!;
        var prefix = "/r/" + routerName;
        var pathAndQuery = AgentRequest.UpstreamPath(context, prefix);
        var path = pathAndQuery?.Split('?', 2)[0];
        if (path is null || !Endpoints.Contains(path, StringComparer.Ordinal) || !HttpMethods.IsPost(context.Request.Method))
        {
            await agents.RefuseAsync(context, 404, "route_not_found", $"A router serves POST {string.Join(", ", Endpoints)}; this request is {context.Request.Method} {path}.", $"Use {prefix}/v1/messages or {prefix}/v1/chat/completions.").ConfigureAwait(false);
            return;
        }

        if (!await agents.AuthorizeAsync(context, routerName, null).ConfigureAwait(false))
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

        if (context.Request.ContentLength is > 0 and var declared && declared > options.RouterBodyLimit)
        {
            await agents.RefuseAsync(context, 413, "body_too_large", $"The request body ({declared} bytes) is larger than a router reads ({options.RouterBodyLimit} bytes).", "Send it to a credential route (/c/NAME/...) instead, which streams any size.").ConfigureAwait(false);
            return;
        }

        JsonObject? json;
        try
        {
            json = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false) as JsonObject;
        }
        catch (JsonException)
        {
            json = null;
        }

        if (json?["model"] is not JsonValue modelValue || !modelValue.TryGetValue<string>(out var model))
        {
            await agents.RefuseAsync(context, 400, "model_missing", "A router needs a JSON request body with a \"model\" string.", "Send the model name in the body, as the Anthropic and OpenAI APIs expect.").ConfigureAwait(false);
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

        await RunTargetsAsync(context, routerName, json, model, targets.ToList(), pathAndQuery!).ConfigureAwait(false);
    }

    private async Task RunTargetsAsync(HttpContext context, string routerName, JsonObject json, string model, List<RouteTarget> targets, string pathAndQuery)
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

                json["model"] = target.Model ?? model;
                using var body = RequestBody.FromBytes(JsonSerializer.SerializeToUtf8Bytes(json));
                var outcome = await exchange.SendAsync(context, credential, pathAndQuery, body).ConfigureAwait(false);
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
                await GatewayErrors.WriteAsync(context, 503, "no_usable_target", $"No target of router '{routerName}' for '{model}' is usable right now ({string.Join(", ", attempts)}).", "'latchkey status' says why each credential is not usable.").ConfigureAwait(false);
                return;
            }

            await UpstreamExchange.WriteAsync(context, last, [new("latchkey-credential", last.Credential), new("latchkey-attempts", string.Join(", ", attempts))]).ConfigureAwait(false);
        }
        finally
        {
            last?.Dispose();
        }
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
