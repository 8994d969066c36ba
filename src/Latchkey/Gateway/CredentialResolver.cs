using System.Collections.Concurrent;
using Latchkey.Store;
using Latchkey.Telemetry;
using Latchkey.Tokens;

namespace Latchkey.Gateway;

/// <summary>A credential ready to inject: its record (metadata) and the secret to send now.</summary>
internal sealed record ResolvedCredential(CredentialRecord Record, string Secret);

/// <summary>
/// Gives the gateway the secret to inject for a credential, through the token engine (which refreshes an OAuth
/// grant when it is due, once for every process), and keeps it for <see cref="GatewayOptions.CacheTime"/> so the
/// hot path does not read the store on every request.
/// </summary>
/// <remarks>
/// <b>Concurrency.</b> Safe from any number of requests. A forced refresh (<see cref="RefreshAfterRejectionAsync"/>)
/// is conditional on the refused token still being the stored one, so N concurrent 401s cause one refresh. It is the
/// gateway's <see cref="ITokenSource{TCredential}"/> for <see cref="RefreshAndResend"/>.
/// </remarks>
internal sealed class CredentialResolver(ICredentialStore store, TokenEngine engine, TimeProvider time, GatewayOptions options) : ITokenSource<ResolvedCredential>
{
    private readonly ConcurrentDictionary<string, (ResolvedCredential Credential, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);

    /// <summary>The credential, or the token engine's answer when it cannot be used.</summary>
    public async ValueTask<(ResolvedCredential? Credential, TokenResult Result)> ResolveAsync(string name, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(name, out var cached) && cached.Until > now)
        {
            return (cached.Credential, TokenResult.Ok(cached.Credential.Secret, cached.Credential.Record.Metadata.ExpiresAt));
        }

        using var span = LatchkeyTelemetry.Source.StartActivity("latchkey.token_engine");
        span?.SetTag("latchkey.credential", name);
        var result = await engine.GetAccessTokenAsync(name, null, ct).ConfigureAwait(false);
        span?.SetTag("latchkey.token.status", result.Status.ToString());
        return await CompleteAsync(name, result, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// After an upstream refused <paramref name="refused"/>: refreshes (once for all concurrent callers, and only
    /// if that token is still the stored one) and returns the credential to retry with.
    /// </summary>
    public async ValueTask<(ResolvedCredential? Credential, TokenResult Result)> RefreshAfterRejectionAsync(string name, string refused, CancellationToken ct)
    {
        _cache.TryRemove(name, out _);
        using var span = LatchkeyTelemetry.Source.StartActivity("latchkey.token_engine");
        span?.SetTag("latchkey.credential", name);
        span?.SetTag("latchkey.token.forced", true);
        var result = await engine.GetAccessTokenAsync(name, engine.Fingerprint(refused), ct).ConfigureAwait(false);
        span?.SetTag("latchkey.token.status", result.Status.ToString());
        return await CompleteAsync(name, result, ct).ConfigureAwait(false);
    }

    ValueTask<(ResolvedCredential? Credential, TokenResult Result)> ITokenSource<ResolvedCredential>.GetAsync(string name, CancellationToken ct) => ResolveAsync(name, ct);

    /// <summary>Forgets a cached credential (after its status was changed).</summary>
    public void Forget(string name) => _cache.TryRemove(name, out _);

    private async ValueTask<(ResolvedCredential?, TokenResult)> CompleteAsync(string name, TokenResult result, CancellationToken ct)
    {
        if (result.Status != TokenStatus.Ok || result.AccessToken is null)
        {
            return (null, result);
        }

        var record = await store.GetAsync(name, ct).ConfigureAwait(false);
        if (record is null)
        {
            return (null, TokenResult.NotFound);
        }

        if (record.State == CredentialState.Quarantined)
        {
            // Changed (or broken) between the token engine's read and this one: its metadata (where the secret would
            // go) is not trusted, so the secret goes nowhere.
            return (null, new TokenResult(TokenStatus.Quarantined, null, record.Reason, null));
        }

        var resolved = new ResolvedCredential(record, result.AccessToken);
        var until = time.GetUtcNow() + options.CacheTime;
        if (result.ExpiresAt is { } expires && expires < until)
        {
            until = expires;
        }

        _cache[name] = (resolved, until);
        return (resolved, result);
    }
}
