using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;

namespace Latchkey.Store;

/// <summary>Connections, failures, migrations and decoding.</summary>
internal sealed partial class PostgresCredentialStore
{
    /// <summary>How long a starting replica waits for another one's migration before giving up.</summary>
    private static readonly TimeSpan MigrationWait = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Runs one operation on a pooled connection. A lost connection empties the pool (its other connections are
    /// as dead) and becomes a retryable <see cref="StoreException"/>; an idempotent operation is tried once more
    /// on a fresh connection first.
    /// </summary>
    private async Task<T> RunAsync<T>(Func<NpgsqlConnection, CancellationToken, Task<T>> operation, bool idempotent, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                return await operation(connection, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsConnectionLoss(ex) && !cancellationToken.IsCancellationRequested)
            {
                _dataSource.Clear();
                if (idempotent && attempt == 0)
                {
                    continue;
                }

                throw Translate(ex, idempotent);
            }
            catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
            {
                throw Translate(ex, idempotent);
            }
        }
    }

    private T Run<T>(Func<NpgsqlConnection, T> operation)
    {
        try
        {
            using var connection = _dataSource.OpenConnection();
            return operation(connection);
        }
        catch (Exception ex) when (IsConnectionLoss(ex))
        {
            _dataSource.Clear();
            throw Translate(ex, idempotent: true);
        }
        catch (NpgsqlException ex)
        {
            throw Translate(ex, idempotent: true);
        }
    }

    /// <summary>Whether the failure is the connection going away (or never coming), as opposed to a refused statement.</summary>
    internal static bool IsConnectionLoss(Exception ex) => ex switch
    {
        PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState is "57P01" or "57P02" or "57P03" or "53300",
        NpgsqlException npgsql => npgsql.IsTransient || npgsql.InnerException is IOException or SocketException or TimeoutException,
        IOException or SocketException => true,
        _ => false,
    };

    private StoreException Translate(Exception ex, bool idempotent)
    {
        var outcome = idempotent
            ? "Nothing was changed"
            : "The write was not confirmed: it either committed whole or not at all, so read the record again before repeating it";
        if (ex is PostgresException pg)
        {
            return pg.SqlState switch
            {
                "28P01" or "28000" => new StoreException("auth_failed",
                    $"PostgreSQL at {Location} refused the login ({pg.MessageText}). Check the user and its password (PGPASSWORD, ~/.pgpass or passfile; never on the command line).", innerException: ex),
                "3D000" => new StoreException("database_missing",
                    $"The database of {Location} does not exist. Create it (for example: createdb -O USER DATABASE) and start again.", innerException: ex),
                "42501" => new StoreException("permission_denied",
                    $"PostgreSQL at {Location} refused a statement: {pg.MessageText}. The role needs to own the Latchkey tables (or have SELECT, INSERT, UPDATE and DELETE on them once migrated).", innerException: ex),
                "40001" or "40P01" or "55P03" or "57014" => new StoreException("store_busy",
                    $"PostgreSQL at {Location} was too busy to finish ({pg.MessageText}). {outcome}; try again.", retryable: true, innerException: ex),
                _ when IsConnectionLoss(pg) => Unavailable(ex, outcome),
                _ => new StoreException("store_error",
                    $"PostgreSQL at {Location} failed (SQLSTATE {pg.SqlState}: {pg.MessageText}). {outcome}.", retryable: pg.IsTransient, innerException: ex),
            };
        }

        return IsConnectionLoss(ex)
            ? Unavailable(ex, outcome)
            : new StoreException("store_error", $"PostgreSQL at {Location} failed ({ex.Message}). {outcome}.", innerException: ex);
    }

    private StoreException Unavailable(Exception ex, string outcome) => new("store_unavailable",
        $"PostgreSQL at {Location} cannot be reached right now ({Describe(ex)}). {outcome}. Check that PostgreSQL is running and reachable, then try again; a running gateway reconnects by itself once PostgreSQL answers.",
        retryable: true, innerException: ex);

    private static string Describe(Exception ex) => ex switch
    {
        PostgresException pg => pg.MessageText,
        { InnerException: SocketException socket } => socket.SocketErrorCode.ToString(),
        { InnerException: IOException io } => io.Message,
        _ => ex.Message,
    };

    /// <summary>
    /// Brings the schema up to date in one transaction under an advisory lock, so replicas that start at once
    /// migrate exactly once; a database already current is left alone without taking the lock, its sealed marker
    /// checked against the home's record. A store from before seals is sealed as <paramref name="sealing"/> allows.
    /// Returns whether the store is sealed (its marker verifies), so the home can record it.
    /// </summary>
    private bool Migrate(string identity, StoreSealing sealing) => Run(connection =>
    {
        if (ReadSchemaVersion(connection, null) == SchemaVersion)
        {
            return _codec.CheckSealed(connection, null, Location, identity, sealing);
        }

        using var transaction = connection.BeginTransaction();
        using (var setup = new NpgsqlCommand(
            $"SET LOCAL statement_timeout = {(int)MigrationWait.TotalMilliseconds}; SET LOCAL lock_timeout = {(int)MigrationWait.TotalMilliseconds}; SELECT pg_advisory_xact_lock(@lock)",
            connection, transaction))
        {
            setup.Parameters.AddWithValue("lock", PostgresSchema.MigrationLock);
            setup.ExecuteNonQuery();
        }

        using (var create = new NpgsqlCommand(PostgresSchema.CreateVersionTable, connection, transaction))
        {
            create.ExecuteNonQuery();
        }

        var version = ReadSchemaVersion(connection, transaction);
        if (version > SchemaVersion)
        {
            throw new StoreException("newer_schema",
                $"The store at {Location} was written by a newer Latchkey (schema {version}; this one knows {SchemaVersion}). Nothing was changed. Upgrade Latchkey on this replica.");
        }

        if (version == SchemaVersion)
        {
            return _codec.CheckSealed(connection, transaction, Location, identity, sealing); // another replica migrated it meanwhile
        }

        if (version > 0 && version < PostgresSchema.RowsSealedFrom)
        {
            RowCodec.RefuseUnsealable(connection, transaction, Location, identity, version, sealing); // before any migration runs
        }

        for (var next = version + 1; next <= SchemaVersion; next++)
        {
            using (var migrate = new NpgsqlCommand(PostgresSchema.Migrations[next - 1], connection, transaction))
            {
                migrate.ExecuteNonQuery();
            }

            using var record = new NpgsqlCommand("INSERT INTO schema_version (version, applied_by) VALUES (@version, @by)", connection, transaction);
            record.Parameters.AddWithValue("version", next);
            record.Parameters.AddWithValue("by", _writer);
            record.ExecuteNonQuery();
        }

        if (version < PostgresSchema.RowsSealedFrom
            && !_codec.SealExistingRows(connection, transaction, Location, identity, version, sealing, _time.GetUtcNow(), _writer))
        {
            transaction.Rollback(); // a preview: nothing is kept
            return false;
        }

        transaction.Commit();
        return version < PostgresSchema.RowsSealedFrom || _codec.CheckSealed(connection, null, Location, identity, sealing);
    });

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
                $"The store at {Location} was written by a newer Latchkey (schema {version}; this one knows {SchemaVersion}). Upgrade Latchkey on this replica.");
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

        return _codec.CheckSealed(connection, null, Location, identity, sealing);
    });

    /// <summary>The highest applied migration, 0 for an empty database.</summary>
    private static int ReadSchemaVersion(NpgsqlConnection connection, NpgsqlTransaction? transaction)
    {
        using (var exists = new NpgsqlCommand("SELECT to_regclass('schema_version') IS NOT NULL", connection, transaction))
        {
            if (exists.ExecuteScalar() is not true)
            {
                return 0;
            }
        }

        using var command = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM schema_version", connection, transaction);
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Records the master key's id on first use and refuses a replica with another key: with two keys, each
    /// replica would seal rows the others cannot open.
    /// </summary>
    private void CheckKey(bool record) => Run(connection =>
    {
        using var command = new NpgsqlCommand(
            (record ? "INSERT INTO store_meta (name, value) VALUES ('key_id', @key_id) ON CONFLICT (name) DO NOTHING; " : string.Empty) +
            "SELECT value FROM store_meta WHERE name = 'key_id'", connection);
        command.Parameters.AddWithValue("key_id", _protector.KeyId);
        var stored = command.ExecuteScalar() as string;
        if (stored is not null && !string.Equals(stored, _protector.KeyId, StringComparison.Ordinal))
        {
            throw new StoreException("key_mismatch",
                $"This replica's master key (id {_protector.KeyId}) is not the one the store at {Location} is sealed with (id {stored}). Nothing was changed. Give every replica the same key file (LATCHKEY_KEY_FILE), copied from one that works; see docs/store.md.");
        }

        return 0;
    });

    private CredentialRecord Decode(StoredRow row) => _codec.Decode(row);

    /// <summary>
    /// Reads a row selected with <see cref="StoredRow.Columns"/> followed by the database's clock
    /// (<see cref="PostgresSchema.NowMs"/>, ordinal 28), moving coordination times onto this process's clock.
    /// </summary>
    private StoredRow ReadStoredRow(NpgsqlDataReader reader) =>
        StoredRow.From(reader, _time.GetUtcNow().ToUnixTimeMilliseconds() - reader.GetInt64(28));
}
