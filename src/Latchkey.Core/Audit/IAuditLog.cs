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

    /// <summary>
    /// Writes the entries and adds the usage counts their requests carried (<see cref="Usage.IUsageLog"/>) in one
    /// transaction: all of them or none. Idempotent like <see cref="AppendAsync(IReadOnlyList{AuditEntry}, CancellationToken)"/>:
    /// when the entries are already stored (a batch whose commit answer was lost), the counts are not added again.
    /// With no entries the counts are added unconditionally.
    /// </summary>
    /// <exception cref="Store.StoreException">Not written; <see cref="Store.StoreException.Retryable"/> says whether trying again may work.</exception>
    Task AppendAsync(IReadOnlyList<AuditEntry> entries, IReadOnlyList<Usage.UsageCount> usage, CancellationToken cancellationToken);

    /// <summary>The newest <see cref="AuditQuery.Limit"/> entries that match, oldest first.</summary>
    Task<IReadOnlyList<AuditEntry>> QueryAsync(AuditQuery query, CancellationToken cancellationToken);

    /// <summary>Deletes the entries older than <paramref name="before"/>; returns how many went.</summary>
    Task<long> PruneAsync(DateTimeOffset before, CancellationToken cancellationToken);
}
