using Latchkey.Http;
using Latchkey.Store;
using Latchkey.Telemetry;
using Latchkey.Tokens;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// The checks every agent request passes before anything is sent upstream, in this order: well-formed headers
/// and request target (<see cref="CheckTargetAsync"/>), then a valid client key that allows the credential, router
/// or server asked for (<see cref="AuthorizeAsync"/>), and only then a usable credential
/// (<see cref="ResolveAsync"/>). Each failure is answered here with a message that says what to do.
/// </summary>
/// <remarks>
/// <b>Security.</b> Nothing before the key has passed reads the credential store or the token engine, so a caller
/// without a key causes no store read, no refresh and no authorization-server traffic, and gets the same answer for
/// a name that exists and one that does not. Until the key has passed, Kestrel's minimum request-body data rate
/// applies (a body trickled in to hold a connection is cut off); an authorized request may stream at any pace.
/// Refusals are logged under a budget (<see cref="RefusedRequestLog"/>), so a flood of them cannot fill the disk.
/// </remarks>
internal sealed class AgentRequest(ClientKeyAuth auth, KeyLimiter limiter, CredentialResolver credentials, TimeProvider time, ILogger<AgentRequest> log) : IDisposable
{
    private readonly RefusedRequestLog _refusedLog = new(log, time);

    /// <summary>
    /// Checks the request's header values and its request target; returns the path and query to append to the
    /// upstream URL (the raw target after <c>/<paramref name="routeWord"/>/<paramref name="name"/></c>, byte for
    /// byte), or writes the refusal and returns null.
    /// </summary>
    public async Task<string?> CheckTargetAsync(HttpContext context, string routeWord, string name)
    {
        foreach (var header in context.Request.Headers)
        {
            foreach (var value in header.Value)
            {
                if (value is not null && !AgentRequestRules.IsSafeHeaderValue(value))
                {
                    await RefuseAsync(context, 400, "header_invalid", $"The request header '{header.Key}' contains control characters (CR, LF, NUL, ...).", "Send header values on one line, as printable text.").ConfigureAwait(false);
                    return null;
                }
            }
        }

        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? string.Empty;
        if (AgentRequestRules.HoldsClientKey(raw))
        {
            AuditFacts.Of(context)?.Path = "(withheld: the URL held a client key)";
            await RefuseAsync(context, 400, "client_key_in_url",
                "The request's URL holds a Latchkey client key (lk_...). A key in a URL would be forwarded to the upstream and written to its logs and every proxy's along the way, so the gateway never forwards one.",
                "Send the key in a header instead: Authorization: Bearer lk_..., or x-api-key: lk_...", withholdPath: true).ConfigureAwait(false);
            return null;
        }

        if (AgentRequestRules.UpstreamPathAndQuery(raw, routeWord, name) is { } pathAndQuery)
        {
            return pathAndQuery;
        }

        await RefuseAsync(context, 400, "path_invalid",
            "The request target must be a plain path: no dot segment, backslash, control character or fragment, whether plain or percent-encoded (at any depth), since those could leave the upstream's base path.",
            "Send a normalised path, percent-encoded once.").ConfigureAwait(false);
        return null;
    }

    /// <summary>
    /// Checks the request's client key against <paramref name="name"/>, then the key's limits
    /// (<see cref="KeyLimiter"/>); writes the refusal and returns false when either fails. On success, removes every
    /// header that carried a key (so none is forwarded), lifts the minimum body data rate for this request, and ties
    /// the request's slot of the key's concurrency limit, if it has one, to the end of the request.
    /// </summary>
    public async Task<bool> AuthorizeAsync(HttpContext context, string name)
    {
        var presented = ClientKeyAuth.Find(context.Request);
        if (presented is null)
        {
            await RefuseAsync(context, 401, "client_key_missing",
                "This request carries no Latchkey client key (looked in Authorization: Bearer, x-api-key and every other header for an lk_ value).",
                $"Create one with 'latchkey keys create NAME --credential {name}' and send it as the API key, or start the agent with 'latchkey run --credential {name} -- AGENT'.").ConfigureAwait(false);
            return false;
        }

        ClientKeyCheck check;
        using (var span = LatchkeyTelemetry.Source.StartActivity("latchkey.client_key.check"))
        {
            check = await auth.CheckAsync(presented.Value, context.RequestAborted).ConfigureAwait(false);
            span?.SetTag("latchkey.client_key", check.Key?.Name);
            span?.SetTag("latchkey.client_key.status", check.Status switch
            {
                ClientKeyStatus.Valid => check.Key!.Allows(name) ? "valid" : "not_allowed",
                ClientKeyStatus.Malformed => "malformed",
                ClientKeyStatus.Unknown => "unknown",
                ClientKeyStatus.Revoked => "revoked",
                ClientKeyStatus.Expired => "expired",
                _ => "tampered",
            });
        }

        AuditFacts.Of(context)?.ClientKey = check.Key?.Name;
        switch (check.Status)
        {
            case ClientKeyStatus.Valid when check.Key!.Allows(name):
                if (check.Key.Limits is not null)
                {
                    var (refusal, slot) = await limiter.EnterAsync(check.Key, context.RequestAborted).ConfigureAwait(false);
                    if (refusal is not null)
                    {
                        await RefuseForLimitAsync(context, name, refusal).ConfigureAwait(false);
                        return false;
                    }

                    if (slot is not null)
                    {
                        context.Response.RegisterForDisposeAsync(slot); // given back when the answer is done or the agent went away
                    }
                }

                foreach (var header in presented.Headers)
                {
                    context.Request.Headers.Remove(header);
                }

                if (context.Features.Get<Microsoft.AspNetCore.Server.Kestrel.Core.Features.IHttpMinRequestBodyDataRateFeature>() is { } rate)
                {
                    rate.MinDataRate = null; // authorized: an agent may stream a request body at its own pace
                }

                AuditFacts.Of(context)?.Authorized = true;
                return true;
            case ClientKeyStatus.Valid:
                await RefuseAsync(context, 403, "client_key_not_allowed",
                    $"The client key '{check.Key!.Name}' does not allow '{name}' (it allows: {string.Join(", ", check.Key.Credentials)}).",
                    $"Use a key that allows it: latchkey keys create NAME --credential {name}").ConfigureAwait(false);
                return false;
            case ClientKeyStatus.Revoked:
                await RefuseAsync(context, 401, "client_key_revoked", $"The client key '{check.Key!.Name}' was revoked.", $"Create a new one: latchkey keys create NAME --credential {name}").ConfigureAwait(false);
                return false;
            case ClientKeyStatus.Expired:
                await RefuseAsync(context, 401, "client_key_expired", $"The client key '{check.Key!.Name}' has expired.", $"Create a new one: latchkey keys create NAME --credential {name}").ConfigureAwait(false);
                return false;
            case ClientKeyStatus.Tampered:
                await RefuseAsync(context, 401, "client_key_tampered",
                    $"The client key '{check.Key!.Name}' is refused: its record in the store was changed outside Latchkey (it does not match its seal, or a revocation was undone).",
                    "Ask the gateway's owner to run 'latchkey doctor', revoke this key and create a new one: latchkey keys create NAME --credential " + name).ConfigureAwait(false);
                return false;
            default:
                await RefuseAsync(context, 401, "client_key_invalid", "The client key on this request is not one this gateway issued (or it was deleted).",
                    $"Create one with 'latchkey keys create NAME --credential {name}'; 'latchkey keys list' shows the keys that exist.").ConfigureAwait(false);
                return false;
        }
    }

    /// <summary>Resolves a credential without answering the agent (a router tries the next target instead).</summary>
    public async Task<ResolvedCredential?> ResolveQuietlyAsync(string name, CancellationToken ct)
    {
        var (credential, result) = await credentials.ResolveAsync(name, ct).ConfigureAwait(false);
        if (credential is null)
        {
            GatewayLog.NotUsable(log, name, result.Reason?.Code ?? result.Status.ToString());
        }

        return credential;
    }

    /// <summary>Resolves a credential to inject; writes the reason and returns null when it cannot be used.</summary>
    public async Task<ResolvedCredential?> ResolveAsync(HttpContext context, string name)
    {
        var (credential, result) = await credentials.ResolveAsync(name, context.RequestAborted).ConfigureAwait(false);
        if (credential is not null)
        {
            return credential;
        }

        GatewayLog.NotUsable(log, name, result.Reason?.Code ?? result.Status.ToString());
        var (status, code, message, fix) = result.Status switch
        {
            TokenStatus.NotFound => (404, "credential_not_found", $"No credential is named '{name}'.", "'latchkey list' shows the names."),
            TokenStatus.Retryable => (503, result.Reason?.Code ?? "refresh_failed", result.Reason?.Message ?? $"'{name}' could not be refreshed just now.", result.Reason?.Fix ?? "Retry shortly."),
            TokenStatus.Quarantined => (503, "quarantined", result.Reason?.Message ?? $"'{name}' is quarantined.", result.Reason?.Fix ?? $"latchkey history {name}"),
            _ => (401, result.Reason?.Code ?? "needs_auth", result.Reason?.Message ?? $"'{name}' needs you to sign in again.", result.Reason?.Fix ?? $"latchkey login {name}"),
        };
        if (result.Status == TokenStatus.Retryable)
        {
            context.Response.Headers.RetryAfter = "5";
        }

        await GatewayErrors.WriteAsync(context, status, code, message, fix, name).ConfigureAwait(false);
        return null;
    }

    /// <summary>Answers a refusal and logs it (within the budget; with <paramref name="withholdPath"/>, without the path).</summary>
    public Task RefuseAsync(HttpContext context, int status, string code, string message, string fix, bool withholdPath = false)
    {
        _refusedLog.Refused(context, withholdPath ? "(withheld)" : context.Request.Path.Value ?? string.Empty, code);
        return GatewayErrors.WriteAsync(context, status, code, message, fix);
    }

    /// <summary>
    /// Answers a request over one of its key's limits: <c>429</c>, <c>retry-after</c>, and
    /// <c>latchkey-diagnostic: key_limit_reached; limit="..."</c>. A token budget that is used up lasts until midnight
    /// UTC, so that answer also says <c>x-should-retry: false</c> (Anthropic's and OpenAI's clients then show it at
    /// once instead of retrying); a rate or concurrency refusal is worth retrying after <c>retry-after</c>.
    /// </summary>
    private Task RefuseForLimitAsync(HttpContext context, string name, KeyLimitRefusal refusal)
    {
        _refusedLog.Refused(context, context.Request.Path.Value ?? string.Empty, KeyLimitRefusal.Code);
        context.Response.Headers["x-should-retry"] = refusal.Limit == KeyLimitRefusal.Tokens ? "false" : "true";
        return GatewayErrors.WriteAsync(context, 429, KeyLimitRefusal.Code, refusal.Message, refusal.Fix, name,
            [("limit", refusal.Limit)], TimeSpan.FromSeconds(refusal.RetryAfterSeconds));
    }

    public void Dispose() => _refusedLog.Dispose();
}
