using System.Data;
using Latchkey.Audit;

namespace Latchkey.Store;

/// <summary>The audit log, in the same database as the credentials it names.</summary>
internal sealed partial class SqliteCredentialStore
{
    private const string AuditInsertSql =
        """
        INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
        ON CONFLICT (event_id) DO NOTHING
        """;

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
            // One transaction and one prepared statement for the batch, bound by position through SQLite's own API:
            // ADO.NET parameters look every name up again on each execution, which cost as much as the inserts.
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            var db = connection.Handle!;
            Check(db, SQLitePCL.raw.sqlite3_prepare_v2(db, AuditInsertSql, out var statement));
            using (statement)
            {
                foreach (var e in entries)
                {
                    SQLitePCL.raw.sqlite3_bind_text(statement, 1, e.EventId);
                    SQLitePCL.raw.sqlite3_bind_int64(statement, 2, e.At.ToUnixTimeMilliseconds());
                    BindText(statement, 3, e.ClientKey);
                    BindText(statement, 4, e.Credential);
                    SQLitePCL.raw.sqlite3_bind_text(statement, 5, e.Route);
                    SQLitePCL.raw.sqlite3_bind_text(statement, 6, e.Method);
                    SQLitePCL.raw.sqlite3_bind_text(statement, 7, AuditRows.StoredPath(e.Path));
                    SQLitePCL.raw.sqlite3_bind_int(statement, 8, e.Status);
                    _ = e.UpstreamStatus is { } upstream ? SQLitePCL.raw.sqlite3_bind_int(statement, 9, upstream) : SQLitePCL.raw.sqlite3_bind_null(statement, 9);
                    SQLitePCL.raw.sqlite3_bind_int64(statement, 10, e.LatencyMs);
                    BindText(statement, 11, e.Reason);
                    SQLitePCL.raw.sqlite3_bind_text(statement, 12, e.Replica);
                    var rc = SQLitePCL.raw.sqlite3_step(statement);
                    if (rc != SQLitePCL.raw.SQLITE_DONE)
                    {
                        Check(db, rc);
                    }

                    SQLitePCL.raw.sqlite3_reset(statement);
                }
            }

            transaction.Commit();
            return 0;
        });
        return Task.CompletedTask;

        static void BindText(SQLitePCL.sqlite3_stmt statement, int index, string? value) =>
            _ = value is null ? SQLitePCL.raw.sqlite3_bind_null(statement, index) : SQLitePCL.raw.sqlite3_bind_text(statement, index, value);

        // The same exception ADO.NET throws, so Run maps busy, full and corrupt databases as for every other call.
        static void Check(SQLitePCL.sqlite3 db, int rc)
        {
            if (rc != SQLitePCL.raw.SQLITE_OK)
            {
                throw new Microsoft.Data.Sqlite.SqliteException(SQLitePCL.raw.sqlite3_errmsg(db).utf8_to_string(), rc, SQLitePCL.raw.sqlite3_extended_errcode(db));
            }
        }
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
