using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Latchkey.Dashboard;

/// <summary>One signed-in browser: its path tag, its anti-forgery token and the message to show on its next page.</summary>
internal sealed class DashboardSession(string id, string tag, string antiforgery, DateTimeOffset expiresAt)
{
    private readonly Lock _lock = new();
    private Flash? _flash;

    /// <summary>The session's key in <see cref="DashboardSessions"/>: the SHA-256 of the cookie value.</summary>
    public string Id { get; } = id;

    /// <summary>
    /// The random path segment of this session's pages (<c>/ui/s/TAG/</c>). The cookie is scoped to that path, so
    /// the browser sends it nowhere else (cookies ignore ports, paths they do not), and a request must carry both:
    /// the cookie alone, replayed from another process, opens nothing.
    /// </summary>
    public string Tag { get; } = tag;

    /// <summary>The path every page, form and link of this session lives under: <c>/ui/s/TAG/</c>.</summary>
    public string Base => DashboardSessions.PathPrefix + Tag + "/";

    /// <summary>The synchronizer token every state-changing form carries (hidden field <c>_csrf</c>).</summary>
    public string Antiforgery { get; } = antiforgery;

    public DateTimeOffset ExpiresAt { get; } = expiresAt;

    /// <summary>Leaves a message for the next page this session sees.</summary>
    public void SetFlash(Flash flash)
    {
        lock (_lock)
        {
            _flash = flash;
        }
    }

    /// <summary>Takes the message left for this page, once.</summary>
    public Flash? TakeFlash()
    {
        lock (_lock)
        {
            var flash = _flash;
            _flash = null;
            return flash;
        }
    }

    /// <summary>Compares a presented anti-forgery token in constant time.</summary>
    public bool CheckAntiforgery(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(Antiforgery));
}

/// <summary>An action's outcome in words; <see cref="NewKey"/> carries a client key value, shown once.</summary>
internal sealed record Flash(bool Ok, string Message, string? NewKeyName = null, string? NewKey = null)
{
    public override string ToString() => $"Flash({Ok}, {Message}, key: {(NewKey is null ? "none" : "***")})";
}

/// <summary>
/// The dashboard's sessions, in the gateway's memory: keyed by the SHA-256 of the cookie value, so the map never
/// holds a usable cookie. A gateway restart signs every browser out (run <c>latchkey dashboard</c> again).
/// </summary>
/// <remarks><b>Concurrency.</b> Safe from many requests at once.</remarks>
internal sealed class DashboardSessions(TimeProvider time)
{
    /// <summary>How long a session lasts from sign-in.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    public const string CookieName = "latchkey_ui";

    /// <summary>Where the tagged session paths start.</summary>
    public const string PathPrefix = "/ui/s/";

    private const int MaxSessions = 256;
    private readonly ConcurrentDictionary<string, DashboardSession> _sessions = new(StringComparer.Ordinal);

    /// <summary>Starts a session and returns the cookie value, which exists only in the browser after this.</summary>
    public (DashboardSession Session, string Cookie) Create()
    {
        var now = time.GetUtcNow();
        foreach (var (key, s) in _sessions)
        {
            if (s.ExpiresAt <= now)
            {
                _sessions.TryRemove(key, out _);
            }
        }

        if (_sessions.Count >= MaxSessions)
        {
            _sessions.Clear(); // a flood of sign-ins: start again rather than grow without bound
        }

        var cookie = SignInLinks.Base64Url(RandomNumberGenerator.GetBytes(32));
        var tag = SignInLinks.Base64Url(RandomNumberGenerator.GetBytes(16));
        var session = new DashboardSession(SignInLinks.Hash(cookie), tag, SignInLinks.Base64Url(RandomNumberGenerator.GetBytes(32)), now + Lifetime);
        _sessions[session.Id] = session;
        return (session, cookie);
    }

    /// <summary>The live session for a cookie value whose tag is <paramref name="tag"/> (compared in constant time),
    /// or null: a cookie presented under any other path opens nothing.</summary>
    public DashboardSession? Find(string? cookie, string? tag)
    {
        if (string.IsNullOrEmpty(cookie) || cookie.Length > 128 || string.IsNullOrEmpty(tag) || tag.Length > 64)
        {
            return null;
        }

        if (_sessions.TryGetValue(SignInLinks.Hash(cookie), out var session) && session.ExpiresAt > time.GetUtcNow()
            && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(tag), Encoding.UTF8.GetBytes(session.Tag)))
        {
            return session;
        }

        return null;
    }

    /// <summary>The session with <paramref name="id"/> (for the OAuth callback, which arrives without the cookie).</summary>
    public DashboardSession? FindById(string id) => _sessions.TryGetValue(id, out var s) && s.ExpiresAt > time.GetUtcNow() ? s : null;

    public void Remove(DashboardSession session) => _sessions.TryRemove(session.Id, out _);
}
