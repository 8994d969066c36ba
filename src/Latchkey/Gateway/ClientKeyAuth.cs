using System.Collections.Concurrent;
using Latchkey.Store;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// Finds the client key on an agent's request and checks it. Agents put credentials in <c>Authorization:
/// Bearer</c> (OpenAI clients, <c>ANTHROPIC_AUTH_TOKEN</c>), <c>x-api-key</c> (Anthropic clients), or the header
/// the credential itself is injected in; all three are accepted, and none of them is ever forwarded.
/// </summary>
/// <remarks>
/// <para><b>Caching.</b> A check is reused for <see cref="GatewayOptions.CacheTime"/>, so a revoked key stops
/// working within that time (one second by default) without a store read on every request.</para>
/// <para><b>Security.</b> The store compares in constant time; the cache is keyed by the presented value and
/// holds no more than that value, which the agent already sent.</para>
/// </remarks>
internal sealed class ClientKeyAuth(IClientKeyStore keys, TimeProvider time, GatewayOptions options)
{
    private const int MaxCached = 4096;
    private readonly ConcurrentDictionary<string, (ClientKeyCheck Check, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);

    /// <summary>The client key value on the request, or null when there is none.</summary>
    public static string? Find(HttpRequest request, string? credentialHeader)
    {
        if (Candidate(request.Headers.Authorization) is { } fromAuthorization)
        {
            return fromAuthorization;
        }

        if (Candidate(request.Headers["x-api-key"]) is { } fromApiKey)
        {
            return fromApiKey;
        }

        return credentialHeader is null ? null : Candidate(request.Headers[credentialHeader]);
    }

    /// <summary>Checks a presented key.</summary>
    public async ValueTask<ClientKeyCheck> CheckAsync(string presented, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(presented, out var cached) && cached.Until > now)
        {
            return cached.Check.Key is { } k && cached.Check.Status == ClientKeyStatus.Valid && k.ExpiresAt <= now
                ? new ClientKeyCheck(ClientKeyStatus.Expired, k)
                : cached.Check;
        }

        var check = await keys.VerifyKeyAsync(presented, ct).ConfigureAwait(false);
        if (_cache.Count >= MaxCached)
        {
            _cache.Clear();
        }

        if (check.Status != ClientKeyStatus.Malformed)
        {
            _cache[presented] = (check, now + options.CacheTime);
        }

        return check;
    }

    private static string? Candidate(Microsoft.Extensions.Primitives.StringValues values)
    {
        foreach (var raw in values)
        {
            if (string.IsNullOrEmpty(raw))
            {
                continue;
            }

            var value = raw.AsSpan().Trim();
            var space = value.IndexOf(' ');
            if (space > 0)
            {
                value = value[(space + 1)..].Trim(); // "Bearer lk_...", or any other scheme word
            }

            if (value.StartsWith(ClientKeyFormat.Prefix, StringComparison.Ordinal))
            {
                return value.ToString();
            }
        }

        return null;
    }
}
