namespace Latchkey.Store;

/// <summary>
/// The client keys agents hold instead of real credentials. A key is shown once, when it is created; the store
/// keeps only its id and an HMAC of it.
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> Every method is one statement or one transaction and safe from many processes.</para>
/// <para><b>Security.</b> <see cref="VerifyKeyAsync"/> compares in constant time and gives the same answer for an
/// unknown id and a wrong secret. Key values never appear in exceptions or logs.</para>
/// </remarks>
internal interface IClientKeyStore
{
    /// <summary>Creates a key named <paramref name="name"/>; null when that name is taken.</summary>
    /// <returns>The stored record and the key value, which exists nowhere else after this call.</returns>
    Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, CancellationToken cancellationToken);

    /// <summary>
    /// Creates a key named <paramref name="name"/> made for the client <paramref name="madeFor"/> (e.g.
    /// <c>claude-code</c>: <c>latchkey mcp install</c> wrote it into that client's configuration); null when that
    /// name is taken. The client is sealed with the row and shown by <c>latchkey keys list</c>.
    /// </summary>
    /// <returns>The stored record and the key value, which exists nowhere else after this call.</returns>
    Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, string? madeFor, CancellationToken cancellationToken);

    /// <summary>
    /// Creates a key as <see cref="CreateKeyAsync(string, IReadOnlyList{string}, DateTimeOffset?, string?, CancellationToken)"/>
    /// does, with what it may spend (<paramref name="limits"/>; null or empty for no limit), sealed with the row.
    /// </summary>
    /// <returns>The stored record and the key value, which exists nowhere else after this call; null when the name is taken.</returns>
    Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, string? madeFor, ClientKeyLimits? limits, CancellationToken cancellationToken);

    /// <summary>
    /// Changes the limits of the active key <paramref name="name"/> to what <paramref name="change"/> makes of its
    /// current ones (called under the write lock, so concurrent changes of different limits both stay), and seals the
    /// row again. A key whose row does not match its seal is not changed (<see cref="KeyLimitsOutcome.Tampered"/>).
    /// </summary>
    Task<(KeyLimitsOutcome Outcome, ClientKey? Key)> SetKeyLimitsAsync(string name, Func<ClientKeyLimits?, ClientKeyLimits?> change, CancellationToken cancellationToken);

    /// <summary>Every key, revoked and expired ones included, by name.</summary>
    Task<IReadOnlyList<ClientKey>> ListKeysAsync(CancellationToken cancellationToken);

    /// <summary>Revokes a key (it stays listed as revoked). False when there is no active key of that name.</summary>
    Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken);

    /// <summary>Deletes a key's record (for keys minted for one session). False when there is none.</summary>
    Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken);

    /// <summary>Checks a presented key value.</summary>
    Task<ClientKeyCheck> VerifyKeyAsync(string presented, CancellationToken cancellationToken);
}

/// <summary>What <see cref="IClientKeyStore.SetKeyLimitsAsync"/> did.</summary>
internal enum KeyLimitsOutcome
{
    Updated,

    /// <summary>No active (unrevoked) key has that name.</summary>
    NotFound,

    /// <summary>The key's row was changed outside Latchkey; it was left as it is, and stays refused.</summary>
    Tampered,
}
