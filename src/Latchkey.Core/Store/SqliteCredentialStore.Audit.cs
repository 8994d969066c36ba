using System.Data;
using Latchkey.Audit;
using Latchkey.Usage;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Latchkey.Store;

/// <summary>SQLite's batch insert into the audit log and upsert of the usage it carries: one prepared statement each, bound by position.</summary>
internal sealed partial class SqliteCredentialStore
{
    private const string AuditInsertSql =
        """
        INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
        ON CONFLICT (event_id) DO NOTHING
        """;

    private static readonly string UsageInsertSql =
        $"INSERT INTO usage_daily ({UsageColumns}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {UsageUpsert}";

    public override Task AppendAsync(IReadOnlyList<AuditEntry> entries, IReadOnlyList<UsageCount> usage, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(usage);
        cancellationToken.ThrowIfCancellationRequested();
        if (entries.Count == 0 && usage.Count == 0)
        {
            return Task.CompletedTask;
        }

        var rows = UsageCount.Aggregate(usage);

        Run(connection =>
        {
            // One transaction and one prepared statement for the batch, bound by position through SQLite's own API:
            // ADO.NET parameters look every name up again on each execution, which cost as much as the inserts.
            var sqlite = (SqliteConnection)connection;
            using var transaction = sqlite.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            var db = sqlite.Handle!;
            var inserted = 0;
            if (entries.Count > 0)
            {
                inserted = InsertEntries(db, entries);
            }

            if (rows.Count > 0 && (entries.Count == 0 || inserted > 0))
            {
                UpsertUsage(db, rows);
            }

            transaction.Commit();
            return 0;
        });
        return Task.CompletedTask;
    }

    /// <summary>Inserts the entries not already stored; returns how many were new.</summary>
    private static int InsertEntries(sqlite3 db, IReadOnlyList<AuditEntry> entries)
    {
        var inserted = 0;
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
                Step(db, statement);
                inserted += raw.sqlite3_changes(db);
            }
        }

        return inserted;
    }

    private static void UpsertUsage(sqlite3 db, IReadOnlyList<UsageCount> rows)
    {
        Check(db, raw.sqlite3_prepare_v2(db, UsageInsertSql, out var statement));
        using (statement)
        {
            foreach (var u in rows)
            {
                raw.sqlite3_bind_text(statement, 1, UsageCount.DayText(u.Day));
                raw.sqlite3_bind_text(statement, 2, u.ClientKey);
                raw.sqlite3_bind_text(statement, 3, u.Credential);
                raw.sqlite3_bind_text(statement, 4, u.Model);
                raw.sqlite3_bind_int64(statement, 5, u.Requests);
                raw.sqlite3_bind_int64(statement, 6, u.InputTokens);
                raw.sqlite3_bind_int64(statement, 7, u.OutputTokens);
                raw.sqlite3_bind_int64(statement, 8, u.CacheCreationTokens);
                raw.sqlite3_bind_int64(statement, 9, u.CacheReadTokens);
                Step(db, statement);
            }
        }
    }

    private static void Step(sqlite3 db, sqlite3_stmt statement)
    {
        var rc = raw.sqlite3_step(statement);
        if (rc != raw.SQLITE_DONE)
        {
            Check(db, rc);
        }

        raw.sqlite3_reset(statement);
    }

    private static void BindText(sqlite3_stmt statement, int index, string? value) =>
        _ = value is null ? raw.sqlite3_bind_null(statement, index) : raw.sqlite3_bind_text(statement, index, value);

    /// <summary>The same exception ADO.NET throws, so Run maps busy, full and corrupt databases as for every other call.</summary>
    private static void Check(sqlite3 db, int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc, raw.sqlite3_extended_errcode(db));
        }
    }
}
