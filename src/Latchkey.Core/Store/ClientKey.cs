namespace Latchkey.Store;

/// <summary>
/// A client key as stored: what it may use and when it stops working. The key itself is never stored, only an
/// HMAC of it, so this record holds nothing secret.
/// </summary>
internal sealed record ClientKey
{
    /// <summary>The entry in <see cref="Credentials"/> that allows every credential and router.</summary>
    public const string Everything = "*";

    /// <summary>What <see cref="StateAt"/> says for a key whose stored row was changed outside Latchkey.</summary>
    public const string TamperedState = "tampered";

    public required string Name { get; init; }

    /// <summary>The public part of the key (after <c>lk_</c>), used to find the record without scanning.</summary>
    public required string KeyId { get; init; }

    /// <summary>The credential and router names this key may use; <c>*</c> allows all.</summary>
    public required IReadOnlyList<string> Credentials { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public DateTimeOffset? RevokedAt { get; init; }

    public DateTimeOffset? LastUsedAt { get; init; }

    /// <summary>
    /// The client the key was made for (<c>claude-code</c>, <c>codex</c>, …) by <c>latchkey mcp install</c>, which
    /// wrote it into that client's configuration; null for a key made by hand. Sealed with the row.
    /// </summary>
    public string? MadeFor { get; init; }

    /// <summary>
    /// What the key may spend (requests per window, tokens per UTC day, requests at once); null when it has no limit.
    /// Sealed with the row: a row whose limits were changed in the database is <see cref="Tampered"/>.
    /// </summary>
    public ClientKeyLimits? Limits { get; init; }

    /// <summary>
    /// The stored row does not match its seal (someone who can write the database changed it), or it reads as not
    /// revoked after this process saw it revoked. Such a key allows nothing and is always refused.
    /// </summary>
    public bool Tampered { get; init; }

    /// <summary>Whether this key may use the credential or router <paramref name="name"/>.</summary>
    public bool Allows(string name) =>
        !Tampered && Credentials.Any(c => c == Everything || string.Equals(c, name, StringComparison.Ordinal));

    /// <summary><c>active</c>, <c>expired</c>, <c>revoked</c> or <c>tampered</c> at <paramref name="now"/>.</summary>
    public string StateAt(DateTimeOffset now) =>
        Tampered ? TamperedState : RevokedAt is not null ? "revoked" : ExpiresAt is { } e && e <= now ? "expired" : "active";
}
