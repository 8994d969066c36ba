using System.Data;
using Latchkey.Audit;

namespace Latchkey.Store;

/// <summary>The audit log, in the same database as the credentials it names.</summary>
internal sealed partial class SqliteCredentialStore
{
    /// <summary>The insert's parameters with their column types, in the order <see cref="AppendAsync"/> binds them.</summary>
    private static readonly (string Name, Microsoft.Data.Sqlite.SqliteType Type)[] AuditParameters =
    [
        ("$event_id", Microsoft.Data.Sqlite.SqliteType.Text), ("$at", Microsoft.Data.Sqlite.SqliteType.Integer),
        ("$client_key", Microsoft.Data.Sqlite.SqliteType.Text), ("$credential", Microsoft.Data.Sqlite.SqliteType.Text),
        ("$route", Microsoft.Data.Sqlite.SqliteType.Text), ("$method", Microsoft.Data.Sqlite.SqliteType.Text),
        ("$path", Microsoft.Data.Sqlite.SqliteType.Text), ("$status", Microsoft.Data.Sqlite.SqliteType.Integer),
        ("$upstream_status", Microsoft.Data.Sqlite.SqliteType.Integer), ("$latency_ms", Microsoft.Data.Sqlite.SqliteType.Integer),
        ("$reason", Microsoft.Data.Sqlite.SqliteType.Text), ("$replica", Microsoft.Data.Sqlite.SqliteType.Text),
    ];

    public Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        cancellationToken.ThrowIfCancellationRequested();
        if (entries.Count == 0)
        {
            return Task.CompletedTask;
        }

        Run(connection =>
        {
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText =
                """
                INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
                VALUES ($event_id, $at, $client_key, $credential, $route, $method, $path, $status, $upstream_status, $latency_ms, $reason, $replica)
                ON CONFLICT (event_id) DO NOTHING
                """;
            // One prepared statement for the batch, its parameters typed once and only their values set per row.
            var p = Array.ConvertAll(AuditParameters, d => command.Parameters.Add(d.Name, d.Type));
            command.Prepare();
            foreach (var e in entries)
            {
                p[0].Value = e.EventId;
                p[1].Value = e.At.ToUnixTimeMilliseconds();
                p[2].Value = (object?)e.ClientKey ?? DBNull.Value;
                p[3].Value = (object?)e.Credential ?? DBNull.Value;
                p[4].Value = e.Route;
                p[5].Value = e.Method;
                p[6].Value = AuditRows.StoredPath(e.Path);
                p[7].Value = e.Status;
                p[8].Value = e.UpstreamStatus is { } upstream ? upstream : DBNull.Value;
                p[9].Value = e.LatencyMs;
                p[10].Value = (object?)e.Reason ?? DBNull.Value;
                p[11].Value = e.Replica;
                command.ExecuteNonQuery();
            }

            transaction.Commit();
            return 0;
        });
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<AuditEntry>> QueryAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run<IReadOnlyList<AuditEntry>>(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {AuditRows.Columns} FROM audit_event{AuditRows.Filter(query, '$')}";
            if (query.Since is { } since)
            {
                command.Parameters.AddWithValue("$since", since.ToUnixTimeMilliseconds());
            }

            if (query.Credential is { } credential)
            {
                command.Parameters.AddWithValue("$credential", credential);
            }

            command.Parameters.AddWithValue("$limit", Math.Max(0, query.Limit));
            using var reader = command.ExecuteReader();
            var entries = new List<AuditEntry>();
            while (reader.Read())
            {
                entries.Add(AuditRows.Read(reader));
            }

            entries.Reverse();
            return entries;
        }));
    }

    public Task<long> PruneAsync(DateTimeOffset before, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM audit_event WHERE at < $before";
            command.Parameters.AddWithValue("$before", before.ToUnixTimeMilliseconds());
            return (long)command.ExecuteNonQuery();
        }));
    }
}
