using System.Data;
using Latchkey.Audit;

namespace Latchkey.Store;

/// <summary>The audit log, in the same database as the credentials it names.</summary>
internal sealed partial class SqliteCredentialStore
{
    private static readonly string[] AuditParameterNames =
        ["$event_id", "$at", "$client_key", "$credential", "$route", "$method", "$path", "$status", "$upstream_status", "$latency_ms", "$reason", "$replica"];

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
            var parameters = AuditParameterNames.Select(n => command.Parameters.Add(n, Microsoft.Data.Sqlite.SqliteType.Text)).ToArray();
            command.Prepare();
            foreach (var e in entries)
            {
                object?[] values = [e.EventId, e.At.ToUnixTimeMilliseconds(), e.ClientKey, e.Credential, e.Route, e.Method, AuditRows.StoredPath(e.Path), e.Status, e.UpstreamStatus, e.LatencyMs, e.Reason, e.Replica];
                for (var i = 0; i < values.Length; i++)
                {
                    parameters[i].Value = values[i] ?? DBNull.Value;
                    parameters[i].ResetSqliteType();
                }

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
