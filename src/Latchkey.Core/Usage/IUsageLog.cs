namespace Latchkey.Usage;

/// <summary>
/// Where token usage is kept: the <c>usage_daily</c> table of the store, on either backend, one row per UTC day,
/// client key, credential and model, added to by upsert. Safe to use from several threads, processes and replicas at
/// once. The gateway writes it through the audit writer's batches (<see cref="Audit.IAuditLog.AppendAsync(IReadOnlyList{Audit.AuditEntry}, IReadOnlyList{UsageCount}, CancellationToken)"/>).
/// </summary>
internal interface IUsageLog : IKeyTokenUsage
{
    /// <summary>Adds the counts in one transaction: all of them or none. Not idempotent: a batch sent twice counts twice.</summary>
    /// <exception cref="Store.StoreException">Not written; <see cref="Store.StoreException.Retryable"/> says whether trying again may work.</exception>
    Task AddUsageAsync(IReadOnlyList<UsageCount> batch, CancellationToken cancellationToken);

    /// <summary>Every row of <paramref name="since"/> and later days, ordered by day, client key, credential and model.</summary>
    Task<IReadOnlyList<UsageCount>> QueryUsageAsync(DateOnly since, CancellationToken cancellationToken);
}
