using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// The checks every agent request passes before anything is sent upstream: well-formed headers, a valid client
/// key that allows the credential or router asked for, and a usable credential. Each failure is answered here
/// with a message that says what to do.
/// </summary>
internal sealed class AgentRequest(ClientKeyAuth auth, CredentialResolver credentials, ILogger<AgentRequest> log)
{
    /// <summary>Checks the request's headers and client key; writes the refusal and returns false when they fail.</summary>
    public async Task<bool> AuthorizeAsync(HttpContext context, string name, string? credentialHeader)
    {
        foreach (var header in context.Request.Headers)
        {
            foreach (var value in header.Value)
            {
                if (value is not null && value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
                {
                    await RefuseAsync(context, 400, "header_invalid", $"The request header '{header.Key}' contains CR, LF or NUL characters.", "Send header values on one line.").ConfigureAwait(false);
                    return false;
                }
            }
        }

        var presented = ClientKeyAuth.Find(context.Request, credentialHeader);
        if (presented is null)
        {
            await RefuseAsync(context, 401, "client_key_missing",
                "This request carries no Latchkey client key (looked in Authorization: Bearer, x-api-key and the credential's header).",
                $"Create one with 'latchkey keys create NAME --credential {name}' and send it as the API key, or start the agent with 'latchkey run --credential {name} -- AGENT'.").ConfigureAwait(false);
            return false;
        }

        var check = await auth.CheckAsync(presented, context.RequestAborted).ConfigureAwait(false);
        Audit.AuditFacts.Of(context)?.ClientKey = check.Key?.Name;
        switch (check.Status)
        {
            case ClientKeyStatus.Valid when check.Key!.Allows(name):
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

    /// <summary>The header a credential is injected in (where an agent may also have put its client key), or null.</summary>
    public async Task<string?> InjectionHeaderAsync(string name, CancellationToken ct)
    {
        var (credential, _) = await credentials.ResolveAsync(name, ct).ConfigureAwait(false);
        return credential?.Record.Metadata.Injection.Header;
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

    /// <summary>
    /// The path and query to append to the upstream URL: the raw request target after <paramref name="prefix"/>,
    /// as the agent sent it (no re-encoding). Null when it holds dot segments, which could climb out of the
    /// upstream's base path.
    /// </summary>
    public static string? UpstreamPath(HttpContext context, string prefix)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? string.Empty;
        string rest;
        if (raw.StartsWith(prefix, StringComparison.Ordinal))
        {
            rest = raw[prefix.Length..];
        }
        else
        {
            rest = context.Request.Path.Value is { } p && p.StartsWith(prefix, StringComparison.Ordinal) ? p[prefix.Length..] + context.Request.QueryString : string.Empty;
        }

        if (rest.Length > 0 && rest[0] != '/' && rest[0] != '?')
        {
            return null; // "/c/namexyz" is not "/c/name" + "xyz"
        }

        var path = rest.AsSpan();
        var query = path.IndexOf('?');
        if (query >= 0)
        {
            path = path[..query];
        }

        if (path.Contains("%2e", StringComparison.OrdinalIgnoreCase) || path.Contains("/./", StringComparison.Ordinal) || path.Contains("/../", StringComparison.Ordinal)
            || path.EndsWith("/..", StringComparison.Ordinal) || path.EndsWith("/.", StringComparison.Ordinal) || path.Contains('\\'))
        {
            return null;
        }

        return rest;
    }

    public Task RefuseAsync(HttpContext context, int status, string code, string message, string fix)
    {
        GatewayLog.Refused(log, context.Request.Path.Value ?? string.Empty, code);
        return GatewayErrors.WriteAsync(context, status, code, message, fix);
    }
}
