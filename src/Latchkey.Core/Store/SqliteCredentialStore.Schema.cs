using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Latchkey.Store;

/// <summary>
/// SQLite's schema steps: the version is the database's <c>user_version</c>, and the migration's
/// <c>BEGIN IMMEDIATE</c> transaction is the lock that makes processes starting together migrate once.
/// </summary>
internal sealed partial class SqliteCredentialStore
{
    private protected override IReadOnlyList<string> Migrations => SqliteSchema.Migrations;

    private protected override int RowsSealedFrom => SqliteSchema.RowsSealedFrom;

    private protected override string UpgradeAdvice => "Upgrade Latchkey.";

    private protected override int ReadSchemaVersion(DbConnection connection, DbTransaction? transaction)
    {
        using var command = connection.Command(transaction, "PRAGMA user_version");
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private protected override DbTransaction BeginMigration(DbConnection connection) =>
        ((SqliteConnection)connection).BeginTransaction(IsolationLevel.Serializable, deferred: false);

    private protected override void RecordSchemaVersion(DbConnection connection, DbTransaction transaction, int version)
    {
        using var command = connection.Command(transaction, $"PRAGMA user_version = {version}");
        command.ExecuteNonQuery();
    }

    /// <summary>Puts the database in write-ahead-log mode (once; the mode is kept in the file), or refuses it.</summary>
    private void UseWriteAheadLog() => Run(connection =>
    {
        using var journal = connection.Command(null, "PRAGMA journal_mode");
        if (!string.Equals(journal.ExecuteScalar() as string, "wal", StringComparison.OrdinalIgnoreCase))
        {
            journal.CommandText = "PRAGMA journal_mode = WAL";
            var mode = journal.ExecuteScalar() as string;
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new StoreException("journal_mode", $"SQLite refused write-ahead logging for {Home.DatabasePath} (mode '{mode}'). Put the home folder on a local disk.");
            }
        }

        return 0;
    });
}
