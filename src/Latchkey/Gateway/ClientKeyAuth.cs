using System.Collections.Concurrent;
using Latchkey.Store;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>A client key found on a request, and every header that carried one (all are removed before forwarding).</summary>
internal sealed record PresentedKey(string Value, IReadOnlyList<string> Headers);

/// <summary>
/// Finds the client key on an agent's request and checks it. Agents put credentials in <c>Authorization:
/// Bearer</c> (OpenAI clients, <c>ANTHROPIC_AUTH_TOKEN</c>), <c>x-api-key</c> (Anthropic clients), or the header
/// the credential itself is injected in (<c>api-key</c>, ...). A key is recognised by its shape (<c>lk_</c>, see
/// <see cref="ClientKeyFormat"/>) in any header, so finding it never needs the credential: the key is checked before
/// anything about the credential is looked up. No header that carried a key is ever forwarded.
/// </summary>
/// <remarks>
/// <para><b>Wherever the key is written.</b> A header carries a key when its value holds a key-shaped run of
/// characters <i>anywhere</i> (<c>token=lk_…</c>, <c>"lk_…"</c>, <c>a,lk_…</c>, <c>Bearer&lt;TAB&gt;lk_…</c>,
/// <c>s=lk_…; path=/</c>, ...), when its value starts with <c>lk_</c> after an optional scheme word (a malformed
/// key, refused as such), or when its name holds a key. Every such header is removed before forwarding. The cost
/// on the hot path is one ordinal search for <c>lk_</c> per header name and value. A key in the URL is refused
/// earlier (<see cref="Http.AgentRequestRules.HoldsClientKey"/>).</para>
/// <para><b>Caching.</b> A check is reused for <see cref="GatewayOptions.CacheTime"/>, so a revoked key stops
/// working within that time (one second by default) without a store read on every request.</para>
/// <para><b>Security.</b> A value that is not a well-formed key (<see cref="ClientKeyFormat.TryGetId"/>) is
/// refused without a store lookup. The store compares in constant time; the cache is keyed by the presented value
/// and holds no more than that value, which the agent already sent.</para>
/// </remarks>
internal sealed class ClientKeyAuth(IClientKeyStore keys, TimeProvider time, GatewayOptions options)
{
    private const int MaxCached = 4096;
    private readonly ConcurrentDictionary<string, (ClientKeyCheck Check, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);

    /// <summary>
    /// The client key on the request, or null when there is none: the first found in <c>Authorization</c>, then
    /// <c>x-api-key</c>, then any other header, with every header that carries one (see the remarks).
    /// </summary>
    public static PresentedKey? Find(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        string? value = null;
        List<string>? headers = null;
        void Consider(string name, Microsoft.Extensions.Primitives.StringValues values)
        {
            var (found, carries) = Candidate(values);
            var inName = ClientKeyFormat.IndexOfKey(name);
            if (carries || inName >= 0)
            {
                value ??= found ?? name.Substring(inName, ClientKeyFormat.Length);
                (headers ??= []).Add(name);
            }
        }

        Consider("Authorization", request.Headers.Authorization);
        Consider("x-api-key", request.Headers["x-api-key"]);
        foreach (var (name, values) in request.Headers)
        {
            if (!name.Equals("Authorization", StringComparison.OrdinalIgnoreCase) && !name.Equals("x-api-key", StringComparison.OrdinalIgnoreCase))
            {
                Consider(name, values);
            }
        }

        return value is null ? null : new PresentedKey(value, headers!);
    }

    /// <summary>Checks a presented key.</summary>
    public async ValueTask<ClientKeyCheck> CheckAsync(string presented, CancellationToken ct)
    {
        if (ClientKeyFormat.TryGetId(presented) is null)
        {
            return ClientKeyCheck.Malformed; // not a key this gateway could have issued: no store lookup
        }

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

        _cache[presented] = (check, now + options.CacheTime);

        return check;
    }

    /// <summary>
    /// The key a header's values present, and whether they carry one at all. A value presents the key it holds
    /// exactly (after an optional scheme word: <c>Bearer lk_…</c>), else the first key-shaped run anywhere in it; a
    /// value that starts with <c>lk_</c> but is no key presents itself (so the answer can say it is malformed).
    /// </summary>
    private static (string? Key, bool Carries) Candidate(Microsoft.Extensions.Primitives.StringValues values)
    {
        string? key = null;
        var carries = false;
        foreach (var raw in values)
        {
            if (string.IsNullOrEmpty(raw) || !raw.Contains(ClientKeyFormat.Prefix, StringComparison.Ordinal))
            {
                continue; // the hot path: one search per value
            }

            var value = raw.AsSpan().Trim();
            var space = value.IndexOf(' ');
            if (space > 0)
            {
                value = value[(space + 1)..].Trim(); // "Bearer lk_...", or any other scheme word
            }

            if (value.StartsWith(ClientKeyFormat.Prefix, StringComparison.Ordinal))
            {
                key ??= value.ToString();
                carries = true;
            }
            else if (ClientKeyFormat.IndexOfKey(raw) is var at and >= 0)
            {
                key ??= raw.Substring(at, ClientKeyFormat.Length);
                carries = true;
            }
        }

        return (key, carries);
    }
}
