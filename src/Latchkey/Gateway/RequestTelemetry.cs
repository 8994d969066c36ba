using System.Collections.Concurrent;
using System.Diagnostics;
using Latchkey.Telemetry;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// Middleware, first on every agent route (<c>/c</c>, <c>/r</c>, <c>/mcp</c>): the request's span
/// (<c>latchkey.request</c>, when a trace exporter listens) and, when the answer is done, its measurements: the
/// request counter, the upstream's duration, and a client-key refusal. It reads what the routes found from
/// <see cref="AuditFacts"/> (filled for the audit entry) and <see cref="UpstreamTiming"/> (set by the exchange), so
/// the routes record nothing twice.
/// </summary>
/// <remarks>
/// <para><b>Labels.</b> <c>route</c> (<c>/c/NAME</c>, <c>/r/NAME</c>, <c>/mcp/NAME</c>), <c>credential</c>,
/// <c>client_key</c> (the key's name) and <c>status</c>. A name from the URL is used only once a valid client key
/// allowed it and it named something that exists; before that the route is only its prefix (<c>/c</c>) and the
/// credential empty, so a caller without a key cannot make up label values (or put a secret in one by sending it as
/// a path), and the route strings kept are at most <see cref="MaxRoutes"/>.</para>
/// <para><b>Cost.</b> Nothing is allocated per request beyond what the audit entry already needs: the labels are
/// names the gateway holds, a cached route string and a pre-boxed status code.</para>
/// </remarks>
internal sealed class RequestTelemetry(TimeProvider time)
{
    /// <summary>How many distinct <c>route</c> label values are kept; later names are counted under the prefix alone.</summary>
    public const int MaxRoutes = 1024;

    /// <summary>Reasons that say the name in the URL names nothing: it is never a label value.</summary>
    private static readonly HashSet<string> NotFound = new(StringComparer.Ordinal) { "credential_not_found", "router_not_found" };

    private readonly ConcurrentDictionary<string, string> _credentialRoutes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _routerRoutes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _mcpRoutes = new(StringComparer.Ordinal);

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var values = context.Request.RouteValues;
        string prefix;
        ConcurrentDictionary<string, string> routes;
        if (values.ContainsKey("credential"))
        {
            (prefix, routes) = ("/c", _credentialRoutes);
        }
        else if (values.ContainsKey("router"))
        {
            (prefix, routes) = ("/r", _routerRoutes);
        }
        else if (values.ContainsKey("server"))
        {
            (prefix, routes) = ("/mcp", _mcpRoutes);
        }
        else
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        using var span = LatchkeyTelemetry.Source.HasListeners() ? StartSpan(context) : null;
        var failed = false;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch
        {
            failed = true;
            throw;
        }
        finally
        {
            Record(context, prefix, routes, failed ? 500 : context.Response.StatusCode, span);
        }
    }

    private void Record(HttpContext context, string prefix, ConcurrentDictionary<string, string> routes, int status, Activity? span)
    {
        var facts = AuditFacts.Of(context);
        var known = facts is { Authorized: true } && (facts.Reason is null || !NotFound.Contains(facts.Reason));
        var route = prefix;
        if (known && context.Request.RouteValues.TryGetValue(prefix == "/c" ? "credential" : prefix == "/r" ? "router" : "server", out var n) && n is string name)
        {
            route = RouteOf(routes, prefix, name);
        }

        var credential = known ? facts!.Credential ?? string.Empty : string.Empty;
        var clientKey = facts?.ClientKey ?? string.Empty;
        var tags = new TagList
        {
            { LatchkeyTelemetry.RouteTag, route },
            { LatchkeyTelemetry.CredentialTag, credential },
            { LatchkeyTelemetry.ClientKeyTag, clientKey },
            { LatchkeyTelemetry.StatusTag, LatchkeyTelemetry.Status(status) },
        };
        LatchkeyTelemetry.Requests.Add(1, in tags);

        if (facts?.Reason is { } reason && (reason.StartsWith("client_key_", StringComparison.Ordinal) || reason.StartsWith("key_limit_", StringComparison.Ordinal)))
        {
            LatchkeyTelemetry.ClientKeyRefusals.Add(1, new KeyValuePair<string, object?>(LatchkeyTelemetry.ReasonTag, reason));
        }

        var upstream = UpstreamTiming.Of(context);
        if (upstream is not null)
        {
            LatchkeyTelemetry.UpstreamDuration.Record(
                time.GetElapsedTime(upstream.Started).TotalSeconds,
                new(LatchkeyTelemetry.CredentialTag, upstream.Credential),
                new(LatchkeyTelemetry.StatusTag, LatchkeyTelemetry.Status(facts?.UpstreamStatus ?? 0)));
        }

        if (span is not null)
        {
            span.SetTag("latchkey.route", route);
            span.SetTag("latchkey.credential", credential);
            span.SetTag("latchkey.client_key", clientKey);
            span.SetTag("http.request.method", context.Request.Method);
            span.SetTag("http.response.status_code", LatchkeyTelemetry.Status(status));
            if (facts?.UpstreamStatus is { } upstreamStatus)
            {
                span.SetTag("latchkey.upstream.status_code", LatchkeyTelemetry.Status(upstreamStatus));
            }

            if (upstream?.RequestId is { } requestId)
            {
                span.SetTag("latchkey.upstream.request_id", requestId);
            }

            if (facts?.Reason is { } code)
            {
                span.SetTag("latchkey.reason", code);
            }

            if (status >= 500)
            {
                span.SetStatus(ActivityStatusCode.Error);
            }
        }
    }

    /// <summary>
    /// The span of an agent request: the server span of the trace, continuing the caller's trace when it sent a W3C
    /// <c>traceparent</c>, else a new one. ASP.NET Core's own request activity (never exported: its spans would carry
    /// the URL) is left out of the chain, or a parent-based sampler would drop every span under it.
    /// </summary>
    private static Activity? StartSpan(HttpContext context)
    {
        var headers = context.Request.Headers;
        var parent = headers.TraceParent.ToString() is { Length: > 0 } traceParent
            && ActivityContext.TryParse(traceParent, headers.TraceState.ToString(), isRemote: true, out var remote)
            ? remote
            : default;
        Activity.Current = null; // for this request's flow only (an async method's changes do not flow back out)
        return LatchkeyTelemetry.Source.StartActivity("latchkey.request", ActivityKind.Server, parent);
    }

    /// <summary>The route label for <paramref name="name"/>: made once per name, at most <see cref="MaxRoutes"/> per prefix.</summary>
    private static string RouteOf(ConcurrentDictionary<string, string> routes, string prefix, string name)
    {
        if (routes.TryGetValue(name, out var route))
        {
            return route;
        }

        return routes.Count >= MaxRoutes ? prefix : routes.GetOrAdd(name, static (n, p) => p + "/" + n, prefix);
    }
}

/// <summary>
/// What the upstream exchange tells <see cref="RequestTelemetry"/> about one request (a request feature): when it
/// was sent upstream and to which credential, the upstream's request id for the span, and whether the first byte
/// of the answer's body has been timed. Names and the request id (quoted, secrets masked) only.
/// </summary>
internal sealed class UpstreamTiming
{
    private UpstreamTiming(string credential, long started)
    {
        Credential = credential;
        Started = started;
    }

    /// <summary>The credential the request was sent with (for a router, the target that answered last).</summary>
    public string Credential { get; private set; }

    /// <summary>When it was sent (a timestamp of the gateway's <see cref="TimeProvider"/>).</summary>
    public long Started { get; private set; }

    /// <summary>The upstream's <c>request-id</c> or <c>x-request-id</c>, quoted, when a span records it.</summary>
    public string? RequestId { get; set; }

    private bool FirstByteSeen { get; set; }

    public static UpstreamTiming? Of(HttpContext context) => context.Features.Get<UpstreamTiming>();

    /// <summary>Notes that the request is being sent to <paramref name="credential"/>'s upstream now (again, for a
    /// router's next target).</summary>
    public static UpstreamTiming Start(HttpContext context, string credential, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(time);
        var started = time.GetTimestamp();
        if (Of(context) is { } timing)
        {
            (timing.Credential, timing.Started, timing.FirstByteSeen, timing.RequestId) = (credential, started, false, null);
            return timing;
        }

        timing = new UpstreamTiming(credential, started);
        context.Features.Set(timing);
        return timing;
    }

    /// <summary>Records the time to the answer's first body byte, once per exchange.</summary>
    public void FirstByte(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        if (FirstByteSeen)
        {
            return;
        }

        FirstByteSeen = true;
        LatchkeyTelemetry.UpstreamTimeToFirstByte.Record(time.GetElapsedTime(Started).TotalSeconds, new KeyValuePair<string, object?>(LatchkeyTelemetry.CredentialTag, Credential));
    }
}
