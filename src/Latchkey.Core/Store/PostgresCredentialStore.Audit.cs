using Latchkey.Audit;
using Latchkey.Usage;
using Npgsql;
using NpgsqlTypes;

namespace Latchkey.Store;

/// <summary>
/// PostgreSQL's batch insert into the audit log, which every replica appends to, with the upsert of the usage it
/// carries: one statement for the batch.
/// </summary>
internal sealed partial class PostgresCredentialStore
{
    private const string AuditInsert =
        """
        INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
        SELECT * FROM unnest(@event_id, @at, @client_key, @credential, @route, @method, @path, @status, @upstream_status, @latency_ms, @reason, @replica)
        ON CONFLICT (event_id) DO NOTHING
        """;

    private static readonly string UsageInsert =
        $"INSERT INTO usage_daily ({UsageColumns}) SELECT * FROM unnest(@day, @u_client_key, @u_credential, @model, @requests, @input, @output, @cache_creation, @cache_read)";

    /// <remarks>
    /// One statement for the whole batch: <c>unnest</c> of one array per column. With usage, the audit insert is a
    /// data-modifying <c>WITH</c> and the usage rows are upserted only when it inserted something (a batch sent again
    /// after a lost commit answer inserts nothing, so it counts once). The usage rows go in their key's order, so two
    /// replicas upserting the same rows lock them in one order.
    /// </remarks>
    public override Task AppendAsync(IReadOnlyList<AuditEntry> entries, IReadOnlyList<UsageCount> usage, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(usage);
        if (entries.Count == 0 && usage.Count == 0)
        {
            return Task.CompletedTask;
        }

        var rows = UsageCount.Aggregate(usage);
        var sql = (entries.Count, rows.Count) switch
        {
            (_, 0) => AuditInsert,
            (0, _) => $"{UsageInsert} {UsageUpsert}",
            _ => $"WITH inserted AS ({AuditInsert} RETURNING 1) {UsageInsert} WHERE EXISTS (SELECT 1 FROM inserted) {UsageUpsert}",
        };

        return RunAsync(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand(sql, (NpgsqlConnection)connection);
            if (entries.Count > 0)
            {
                command.Parameters.Add(Array("event_id", NpgsqlDbType.Text, entries.Select(e => (object?)e.EventId)));
                command.Parameters.Add(Array("at", NpgsqlDbType.Bigint, entries.Select(e => (object?)e.At.ToUnixTimeMilliseconds())));
                command.Parameters.Add(Array("client_key", NpgsqlDbType.Text, entries.Select(e => (object?)e.ClientKey)));
                command.Parameters.Add(Array("credential", NpgsqlDbType.Text, entries.Select(e => (object?)e.Credential)));
                command.Parameters.Add(Array("route", NpgsqlDbType.Text, entries.Select(e => (object?)e.Route)));
                command.Parameters.Add(Array("method", NpgsqlDbType.Text, entries.Select(e => (object?)e.Method)));
                command.Parameters.Add(Array("path", NpgsqlDbType.Text, entries.Select(e => (object?)AuditRows.StoredPath(e.Path))));
                command.Parameters.Add(Array("status", NpgsqlDbType.Integer, entries.Select(e => (object?)e.Status)));
                command.Parameters.Add(Array("upstream_status", NpgsqlDbType.Integer, entries.Select(e => (object?)e.UpstreamStatus)));
                command.Parameters.Add(Array("latency_ms", NpgsqlDbType.Bigint, entries.Select(e => (object?)e.LatencyMs)));
                command.Parameters.Add(Array("reason", NpgsqlDbType.Text, entries.Select(e => (object?)e.Reason)));
                command.Parameters.Add(Array("replica", NpgsqlDbType.Text, entries.Select(e => (object?)e.Replica)));
            }

            if (rows.Count > 0)
            {
                command.Parameters.Add(Array("day", NpgsqlDbType.Text, rows.Select(u => (object?)UsageCount.DayText(u.Day))));
                command.Parameters.Add(Array("u_client_key", NpgsqlDbType.Text, rows.Select(u => (object?)u.ClientKey)));
                command.Parameters.Add(Array("u_credential", NpgsqlDbType.Text, rows.Select(u => (object?)u.Credential)));
                command.Parameters.Add(Array("model", NpgsqlDbType.Text, rows.Select(u => (object?)u.Model)));
                command.Parameters.Add(Array("requests", NpgsqlDbType.Bigint, rows.Select(u => (object?)u.Requests)));
                command.Parameters.Add(Array("input", NpgsqlDbType.Bigint, rows.Select(u => (object?)u.InputTokens)));
                command.Parameters.Add(Array("output", NpgsqlDbType.Bigint, rows.Select(u => (object?)u.OutputTokens)));
                command.Parameters.Add(Array("cache_creation", NpgsqlDbType.Bigint, rows.Select(u => (object?)u.CacheCreationTokens)));
                command.Parameters.Add(Array("cache_read", NpgsqlDbType.Bigint, rows.Select(u => (object?)u.CacheReadTokens)));
            }

            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }, idempotent: entries.Count > 0, cancellationToken);
    }

    private static NpgsqlParameter Array(string name, NpgsqlDbType type, IEnumerable<object?> values) =>
        new(name, NpgsqlDbType.Array | type) { Value = values.Select(v => v ?? DBNull.Value).ToArray() };
}
