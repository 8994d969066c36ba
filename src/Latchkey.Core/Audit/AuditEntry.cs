namespace Latchkey.Audit;

/// <summary>
/// One request the gateway answered on a credential, router or MCP route. Never holds secrets or bodies: the client
/// key by its name only, the path without its query string. Every text column is cut to a bounded length when the
/// entry is made (and on every <c>with</c>), whoever makes it, so no caller can store more: see the <c>Max…</c>
/// constants.
/// </summary>
/// <param name="At">When the request arrived (the gateway's clock).</param>
/// <param name="ClientKey">The name of the client key that was presented and recognised, or null.</param>
/// <param name="Credential">The credential that served (for a router, the last one tried), or null.</param>
/// <param name="Route">The route: <c>/c/NAME</c>, <c>/r/NAME</c> or <c>/mcp/NAME</c>.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Path">The request path, without the query string, at most <see cref="MaxPathLength"/> characters.</param>
/// <param name="Status">The status the agent got.</param>
/// <param name="UpstreamStatus">The status the upstream answered with, or null when no upstream answered.</param>
/// <param name="LatencyMs">From arrival until the answer was written.</param>
/// <param name="Reason">The diagnostic reason code (the <c>latchkey-diagnostic</c> header's), or null.</param>
/// <param name="Replica">Which gateway process answered (<c>host/pid</c>).</param>
internal sealed record AuditEntry(
    DateTimeOffset At, string? ClientKey, string? Credential, string Route, string Method, string Path,
    int Status, int? UpstreamStatus, long LatencyMs, string? Reason, string Replica)
{
    /// <summary>The most characters of <see cref="Path"/> kept.</summary>
    public const int MaxPathLength = 512;

    /// <summary>The most characters of <see cref="ClientKey"/> and <see cref="Credential"/> kept.</summary>
    public const int MaxNameLength = 128;

    /// <summary>The most characters of <see cref="Route"/> kept.</summary>
    public const int MaxRouteLength = 160;

    /// <summary>The most characters of <see cref="Method"/> kept.</summary>
    public const int MaxMethodLength = 32;

    /// <summary>The most characters of <see cref="Reason"/> kept.</summary>
    public const int MaxReasonLength = 64;

    /// <summary>The most characters of <see cref="Replica"/> kept.</summary>
    public const int MaxReplicaLength = 128;

    private readonly string? _clientKey = Cut(ClientKey, MaxNameLength);
    private readonly string? _credential = Cut(Credential, MaxNameLength);
    private readonly string _route = Cut(Route, MaxRouteLength)!;
    private readonly string _method = Cut(Method, MaxMethodLength)!;
    private readonly string _path = Cut(Path, MaxPathLength)!;
    private readonly string? _reason = Cut(Reason, MaxReasonLength);
    private readonly string _replica = Cut(Replica, MaxReplicaLength)!;

    public string? ClientKey { get => _clientKey; init => _clientKey = Cut(value, MaxNameLength); }

    public string? Credential { get => _credential; init => _credential = Cut(value, MaxNameLength); }

    public string Route { get => _route; init => _route = Cut(value, MaxRouteLength)!; }

    public string Method { get => _method; init => _method = Cut(value, MaxMethodLength)!; }

    public string Path { get => _path; init => _path = Cut(value, MaxPathLength)!; }

    public string? Reason { get => _reason; init => _reason = Cut(value, MaxReasonLength); }

    public string Replica { get => _replica; init => _replica = Cut(value, MaxReplicaLength)!; }

    /// <summary>An id the store keeps unique, so a batch written again after a lost answer is kept once.</summary>
    public string EventId { get; init; } = AuditEventIds.Next();

    /// <summary>The store's id, increasing in the order entries were written (0 before they are).</summary>
    public long Id { get; init; }

    /// <summary>The first <paramref name="max"/> characters of <paramref name="value"/>, never splitting a surrogate pair.</summary>
    internal static string? Cut(string? value, int max)
    {
        if (value is null || value.Length <= max)
        {
            return value;
        }

        var length = char.IsHighSurrogate(value[max - 1]) ? max - 1 : max;
        return value[..length];
    }
}

/// <summary>
/// Event ids: 32 lowercase hex digits, a random 64-bit prefix chosen once per process followed by a 64-bit
/// counter. Unique across replicas and restarts (the prefix) without a random draw per request, and increasing
/// within a process, so each insert lands at the end of the store's unique index instead of at a random page.
/// </summary>
/// <remarks>Thread-safe. An id reveals only which process wrote the entry and in what order, which the entry's
/// <c>replica</c> and <c>id</c> columns say anyway.</remarks>
internal static class AuditEventIds
{
    private static readonly string Prefix = System.Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
    private static long _counter;

    public static string Next()
    {
        var n = (ulong)System.Threading.Interlocked.Increment(ref _counter);
        return string.Create(32, n, static (span, value) =>
        {
            Prefix.AsSpan().CopyTo(span);
            value.TryFormat(span[16..], out _, "x16", System.Globalization.CultureInfo.InvariantCulture);
        });
    }
}
