using Latchkey.Audit;

namespace Latchkey.Store;

/// <summary>
/// The audit log, in the same database as the credentials it names (rows as <see cref="AuditRows"/> reads them).
/// Appending a batch is the backend's own (<see cref="AppendAsync(IReadOnlyList{AuditEntry}, IReadOnlyList{Usage.UsageCount}, CancellationToken)"/>): each has a fast way to insert many rows.
/// </summary>
internal abstract partial class CredentialStore
{
    /// <summary>
    /// Appends a batch in one transaction. Idempotent: an entry already stored (same <see cref="AuditEntry.EventId"/>)
    /// is skipped, so a batch whose commit answer was lost can be sent again without writing anything twice.
    /// </summary>
    public Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken) => AppendAsync(entries, [], cancellationToken);

    /// <summary>
    /// Appends a batch of entries and adds its usage counts (aggregated first: <see cref="Usage.UsageCount.Aggregate"/>)
    /// in one transaction. The counts are added only when the entries were not already stored (all of a batch is, or
    /// none), so a batch sent again after a lost commit answer counts once; with no entries they are always added.
    /// </summary>
    public abstract Task AppendAsync(IReadOnlyList<AuditEntry> entries, IReadOnlyList<Usage.UsageCount> usage, CancellationToken cancellationToken);

    public Task<IReadOnlyList<AuditEntry>> QueryAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        return RunAsync<IReadOnlyList<AuditEntry>>(async (connection, ct) =>
        {
            await using var command = connection.Command(null, $"SELECT {AuditRows.Columns} FROM audit_event{AuditRows.Filter(query)}");
            if (query.Since is { } since)
            {
                command.Bind("@since", since.ToUnixTimeMilliseconds());
            }

            if (query.Credential is { } credential)
            {
                command.Bind("@credential", credential);
            }

            command.Bind("@limit", Math.Max(0, query.Limit));
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var entries = new List<AuditEntry>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                entries.Add(AuditRows.Read(reader));
            }

            entries.Reverse();
            return entries;
        }, idempotent: true, cancellationToken);
    }

    public Task<long> PruneAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
        RunAsync(async (connection, ct) =>
        {
            await using var command = connection.Command(null, "DELETE FROM audit_event WHERE at < @before").Bind("@before", before.ToUnixTimeMilliseconds());
            return (long)await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }, idempotent: true, cancellationToken);
}
