using System.Data;
using Latchkey.Audit;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Latchkey.Store;

/// <summary>SQLite's batch insert into the audit log: one prepared statement, bound by position.</summary>
internal sealed partial class SqliteCredentialStore
{
    private const string AuditInsertSql =
        """
        INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
        ON CONFLICT (event_id) DO NOTHING
        """;

    public override Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
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
            var sqlite = (SqliteConnection)connection;
            using var transaction = sqlite.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            var db = sqlite.Handle!;
            Check(db, raw.sqlite3_prepare_v2(db, AuditInsertSql, out var statement));
            using (statement)
            {
                foreach (var e in entries)
                {
                    raw.sqlite3_bind_text(statement, 1, e.EventId);
                    raw.sqlite3_bind_int64(statement, 2, e.At.ToUnixTimeMilliseconds());
                    BindText(statement, 3, e.ClientKey);
                    BindText(statement, 4, e.Credential);
                    raw.sqlite3_bind_text(statement, 5, e.Route);
                    raw.sqlite3_bind_text(statement, 6, e.Method);
                    raw.sqlite3_bind_text(statement, 7, AuditRows.StoredPath(e.Path));
                    raw.sqlite3_bind_int(statement, 8, e.Status);
                    _ = e.UpstreamStatus is { } upstream ? raw.sqlite3_bind_int(statement, 9, upstream) : raw.sqlite3_bind_null(statement, 9);
                    raw.sqlite3_bind_int64(statement, 10, e.LatencyMs);
                    BindText(statement, 11, e.Reason);
                    raw.sqlite3_bind_text(statement, 12, e.Replica);
                    var rc = raw.sqlite3_step(statement);
                    if (rc != raw.SQLITE_DONE)
                    {
                        Check(db, rc);
                    }

                    raw.sqlite3_reset(statement);
                }
            }

            transaction.Commit();
            return 0;
        });
        return Task.CompletedTask;

        static void BindText(sqlite3_stmt statement, int index, string? value) =>
            _ = value is null ? raw.sqlite3_bind_null(statement, index) : raw.sqlite3_bind_text(statement, index, value);

        // The same exception ADO.NET throws, so Run maps busy, full and corrupt databases as for every other call.
        static void Check(sqlite3 db, int rc)
        {
            if (rc != raw.SQLITE_OK)
            {
                throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc, raw.sqlite3_extended_errcode(db));
            }
        }
    }
}
