namespace Latchkey.Audit;

/// <summary>
/// Where audit entries are kept: a table in the store, on either backend, that outlives the credentials it names
/// (no foreign key). Safe to use from several threads and processes at once.
/// </summary>
internal interface IAuditLog
{
    /// <summary>Writes the entries in one transaction: all of them or none.</summary>
    /// <exception cref="Store.StoreException">Not written; <see cref="Store.StoreException.Retryable"/> says whether trying again may work.</exception>
    Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken);

    /// <summary>The newest <see cref="AuditQuery.Limit"/> entries that match, oldest first.</summary>
    Task<IReadOnlyList<AuditEntry>> QueryAsync(AuditQuery query, CancellationToken cancellationToken);

    /// <summary>Deletes the entries older than <paramref name="before"/>; returns how many went.</summary>
    Task<long> PruneAsync(DateTimeOffset before, CancellationToken cancellationToken);
}
