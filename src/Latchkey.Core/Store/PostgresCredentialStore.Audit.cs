using Latchkey.Audit;
using Npgsql;
using NpgsqlTypes;

namespace Latchkey.Store;

/// <summary>PostgreSQL's batch insert into the audit log, which every replica appends to: one statement for the batch.</summary>
internal sealed partial class PostgresCredentialStore
{
    /// <remarks>One statement for the whole batch: <c>unnest</c> of one array per column.</remarks>
    public override Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0)
        {
            return Task.CompletedTask;
        }

        return RunAsync(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand(
                """
                INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
                SELECT * FROM unnest(@event_id, @at, @client_key, @credential, @route, @method, @path, @status, @upstream_status, @latency_ms, @reason, @replica)
                ON CONFLICT (event_id) DO NOTHING
                """, (NpgsqlConnection)connection);
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
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }, idempotent: true, cancellationToken);
    }

    private static NpgsqlParameter Array(string name, NpgsqlDbType type, IEnumerable<object?> values) =>
        new(name, NpgsqlDbType.Array | type) { Value = values.Select(v => v ?? DBNull.Value).ToArray() };
}
