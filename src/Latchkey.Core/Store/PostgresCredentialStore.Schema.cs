using System.Data.Common;
using Npgsql;

namespace Latchkey.Store;

/// <summary>
/// PostgreSQL's schema steps: one row per applied migration in <c>schema_version</c>, and a migration transaction
/// that holds <c>pg_advisory_xact_lock</c> on a fixed key, so that replicas starting together migrate once. Also the
/// checks only a shared database needs: the master key every replica must share, and <c>doctor</c>'s read-only open.
/// </summary>
internal sealed partial class PostgresCredentialStore
{
    /// <summary>How long a starting replica waits for another one's migration before giving up.</summary>
    private static readonly TimeSpan MigrationWait = TimeSpan.FromSeconds(60);

    private protected override IReadOnlyList<string> Migrations => PostgresSchema.Migrations;

    private protected override int RowsSealedFrom => PostgresSchema.RowsSealedFrom;

    private protected override string UpgradeAdvice => "Upgrade Latchkey on this replica.";

    private protected override bool RefusesUnsealableBeforeMigrating => true;

    /// <summary>The highest applied migration, 0 for an empty database.</summary>
    private protected override int ReadSchemaVersion(DbConnection connection, DbTransaction? transaction)
    {
        using (var exists = connection.Command(transaction, "SELECT to_regclass('schema_version') IS NOT NULL"))
        {
            if (exists.ExecuteScalar() is not true)
            {
                return 0;
            }
        }

        using var command = connection.Command(transaction, "SELECT coalesce(max(version), 0) FROM schema_version");
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private protected override DbTransaction BeginMigration(DbConnection connection)
    {
        var transaction = ((NpgsqlConnection)connection).BeginTransaction();
        try
        {
            using var setup = connection.Command(transaction,
                $"SET LOCAL statement_timeout = {(int)MigrationWait.TotalMilliseconds}; SET LOCAL lock_timeout = {(int)MigrationWait.TotalMilliseconds}; SELECT pg_advisory_xact_lock(@lock); " +
                PostgresSchema.CreateVersionTable);
            setup.Bind("@lock", PostgresSchema.MigrationLock).ExecuteNonQuery();
            return transaction;
        }
        catch
        {
            transaction.Dispose();
            throw;
        }
    }

    private protected override void RecordSchemaVersion(DbConnection connection, DbTransaction transaction, int version)
    {
        using var record = connection.Command(transaction, "INSERT INTO schema_version (version, applied_by) VALUES (@version, @by)");
        record.Bind("@version", version).Bind("@by", Writer).ExecuteNonQuery();
    }

    /// <summary>
    /// Refuses a schema this build would have to migrate, or cannot read, without changing it; a store from before
    /// seals that must not be sealed on open is refused as such (rolled back, or waiting for <c>latchkey store
    /// seal</c>). Returns whether a current store's sealed marker verifies.
    /// </summary>
    private bool CheckSchemaCurrent(string identity, StoreSealing sealing) => Run(connection =>
    {
        var version = ReadSchemaVersion(connection, null);
        if (version > SchemaVersion)
        {
            throw new StoreException("newer_schema",
                $"The store at {Location} was written by a newer Latchkey (schema {version}; this one knows {SchemaVersion}). {UpgradeAdvice}");
        }

        if (version > 0 && version < PostgresSchema.RowsSealedFrom)
        {
            RowCodec.RefuseUnsealable(connection, null, Location, identity, version, sealing);
        }

        if (version < SchemaVersion)
        {
            throw new StoreException("schema_behind",
                $"The store at {Location} has schema {version}; this Latchkey uses {SchemaVersion}. Nothing was changed. Any command or 'latchkey serve' migrates it on start.");
        }

        return Codec.CheckSealed(connection, null, Location, identity, sealing);
    });

    /// <summary>
    /// Records the master key's id on first use and refuses a replica with another key: with two keys, each
    /// replica would seal rows the others cannot open.
    /// </summary>
    private void CheckKey(bool record) => Run(connection =>
    {
        using var command = connection.Command(null,
            (record ? "INSERT INTO store_meta (name, value) VALUES ('key_id', @key_id) ON CONFLICT (name) DO NOTHING; " : string.Empty) +
            "SELECT value FROM store_meta WHERE name = 'key_id'").Bind("@key_id", KeyId);
        var stored = command.ExecuteScalar() as string;
        if (stored is not null && !string.Equals(stored, KeyId, StringComparison.Ordinal))
        {
            throw new StoreException("key_mismatch",
                $"This replica's master key (id {KeyId}) is not the one the store at {Location} is sealed with (id {stored}). Nothing was changed. Give every replica the same key file (LATCHKEY_KEY_FILE), copied from one that works; see docs/store.md.");
        }

        return 0;
    });
}
