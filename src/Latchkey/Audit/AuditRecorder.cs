using Microsoft.AspNetCore.Http;

namespace Latchkey.Audit;

/// <summary>
/// Middleware that records one <see cref="AuditEntry"/> per request on a credential route (<c>/c/NAME</c>) or a
/// router (<c>/r/NAME</c>), when the answer is done: who (the client key's name), what (credential, route, method,
/// path without query), and how it went (status, upstream status, latency, reason). The routes fill in
/// <see cref="AuditFacts"/> as they learn them.
/// </summary>
internal sealed class AuditRecorder(AuditWriter writer, TimeProvider time)
{
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var values = context.Request.RouteValues;
        var route = values.TryGetValue("credential", out var c) && c is string credential ? "/c/" + credential
            : values.TryGetValue("router", out var r) && r is string router ? "/r/" + router
            : null;
        if (route is null)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var facts = new AuditFacts { Credential = route.StartsWith("/c/", StringComparison.Ordinal) ? route[3..] : null };
        context.Features.Set(facts);
        var at = time.GetUtcNow();
        var started = time.GetTimestamp();
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
            var reason = facts.Reason ?? (failed ? "gateway_error" : context.RequestAborted.IsCancellationRequested ? "client_closed" : null);
            writer.Record(new AuditEntry(
                at, facts.ClientKey, facts.Credential, route, context.Request.Method, context.Request.Path.Value ?? string.Empty,
                failed ? 500 : context.Response.StatusCode, facts.UpstreamStatus, (long)time.GetElapsedTime(started).TotalMilliseconds,
                reason, AuditWriter.Replica));
        }
    }
}
