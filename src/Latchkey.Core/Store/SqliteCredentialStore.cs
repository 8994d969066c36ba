using System.Data;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Latchkey.Store;

/// <summary>
/// The embedded default backend: one SQLite database in the home folder, in WAL mode with
/// <c>synchronous=FULL</c>, every write one <c>BEGIN IMMEDIATE</c> transaction, a busy timeout sized for 50
/// processes writing at once. See <see cref="ICredentialStore"/> for the contract.
/// </summary>
/// <remarks>
/// Each operation takes a pooled connection of its own, so an instance is safe to share between threads.
/// Conditions are checked inside the write transaction, which holds SQLite's single write lock: a check and the
/// write it guards cannot be separated by another writer in any process.
/// </remarks>
internal sealed partial class SqliteCredentialStore : ILatchkeyStore, IDisposable
{
    /// <summary>The schema this build writes. An older database is migrated forward; a newer one is refused.</summary>
    public static int SchemaVersion => SqliteSchema.Migrations.Count;

    /// <summary>How long a writer waits for the write lock before giving up (50 processes at once fit easily).</summary>
    public static readonly TimeSpan BusyTimeout = TimeSpan.FromSeconds(30);

    private readonly string _connectionString;
    private readonly SecretProtector _protector;
    private readonly RowCodec _codec;
    private readonly TimeProvider _time;
    private readonly string _writer;

    private SqliteCredentialStore(StoreHome home, SecretProtector protector, TimeProvider time)
    {
        Home = home;
        _protector = protector;
        _codec = new RowCodec(protector);
        _time = time;
        _writer = $"{Environment.MachineName}/{Environment.ProcessId}";
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = home.DatabasePath,
            Mode = SqliteOpenMode.ReadWrite,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = (int)BusyTimeout.TotalSeconds,
        }.ToString();
    }

    public StoreHome Home { get; }

    public string Backend => "sqlite";

    public string Location => Home.DatabasePath;

    public int HistoryDepth => 10;

    /// <summary>The id of the master key in use.</summary>
    public string KeyId => _protector.KeyId;

    /// <summary>
    /// Opens (creating when missing) the store in <paramref name="home"/>: checks the folder, loads or creates the
    /// master key, pre-creates the database 0600, and brings the schema up to date. A store from before seals is
    /// sealed then only as <paramref name="sealing"/> allows; by default (the key is the home's <c>master.key</c>),
    /// once, unless the home recorded the store as sealed before (<see cref="StoreSealing"/>).
    /// </summary>
    /// <exception cref="StoreException">The store cannot be used; the message says why and what to do.</exception>
    public static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing = null)
    {
        home.EnsureReady();
        PrecreateDatabase(home.DatabasePath);
        foreach (var file in new[] { home.DatabasePath, home.DatabasePath + "-wal", home.DatabasePath + "-shm" })
        {
            if (StoreHome.CheckFileMode(file) is { } problem)
            {
                throw new StoreException("file_permissions", problem);
            }
        }

        if (!File.Exists(home.KeyFilePath))
        {
            RefuseNewKeyBesideSealedData(home);
        }

        var key = home.LoadOrCreateMasterKey();
        SecretProtector protector;
        try
        {
            protector = new SecretProtector(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        var store = new SqliteCredentialStore(home, protector, time);
        try
        {
            sealing ??= StoreSealing.ForHomeKey(SealLedger.In(home));
            if (store.Migrate(sealing))
            {
                sealing.Remember(StoreSealing.SqliteIdentity, protector.KeyId, time.GetUtcNow());
            }

            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    public Task<CredentialRecord?> GetAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection => ReadRow(connection, null, name) is { } row ? Decode(row) : null));
    }

    public Task<IReadOnlyList<CredentialRecord>> ListAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run<IReadOnlyList<CredentialRecord>>(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {StoredRow.Columns} FROM credential ORDER BY name";
            using var reader = command.ExecuteReader();
            var records = new List<CredentialRecord>();
            while (reader.Read())
            {
                records.Add(Decode(StoredRow.From(reader, 0)));
            }

            return records;
        }));
    }

    public Task<WriteResult> CreateAsync(NewCredential credential, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(credential);
        cancellationToken.ThrowIfCancellationRequested();
        if (CredentialNames.Validate(credential.Name) is { } problem)
        {
            throw new ArgumentException(problem, nameof(credential));
        }

        return Task.FromResult(Run(connection =>
        {
            var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var kind = RowCodec.KindText(credential.Kind);
            var content = _codec.NewContent(credential, id);
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            using var command = connection.CreateCommand();
            command.CommandText =
                """
                INSERT INTO credential (id, name, kind, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, at_fp, created_at, updated_at, updated_by, row_mac)
                VALUES ($id, $name, $kind, 1, $state, $reason, $metadata, $key_id, $secret_ct, $rt_fp, $at_fp, $now, $now, $by, $mac)
                ON CONFLICT (name) DO NOTHING
                """;
            AddContent(command, content, id, _codec.SealCredential(id, credential.Name, kind, 1, content));
            command.Parameters.AddWithValue("$name", credential.Name);
            command.Parameters.AddWithValue("$kind", kind);
            command.Transaction = transaction;
            if (command.ExecuteNonQuery() == 0)
            {
                return new WriteResult(WriteOutcome.AlreadyExists, ReadRow(connection, transaction, credential.Name) is { } row ? Decode(row) : null);
            }

            var written = Decode(ReadRow(connection, transaction, credential.Name)!);
            transaction.Commit();
            return new WriteResult(WriteOutcome.Written, written);
        }));
    }

    public Task<WriteResult> UpdateAsync(string name, CredentialPatch patch, WriteCondition condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(condition);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            var row = ReadRow(connection, transaction, name);
            if (row is null)
            {
                return new WriteResult(WriteOutcome.NotFound, null);
            }

            var current = Decode(row);
            if (!condition.IsSatisfiedBy(row.Version, row.RefreshTokenFingerprint))
            {
                return new WriteResult(WriteOutcome.ConditionFailed, current);
            }

            if (current.State == CredentialState.Quarantined)
            {
                return new WriteResult(WriteOutcome.Quarantined, current);
            }

            var content = _codec.Apply(row, current, patch);

            Archive(connection, transaction, row);
            using (var command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText =
                    """
                    UPDATE credential SET version = version + 1, state = $state, reason_json = $reason, metadata_json = $metadata,
                      key_id = $key_id, secret_ct = $secret_ct, rt_fp = $rt_fp, at_fp = $at_fp, updated_at = $now, updated_by = $by, row_mac = $mac
                    WHERE id = $id AND version = $version
                    """;
                if (patch.CompletesRefreshOf is not null)
                {
                    command.CommandText +=
                        """
                        ;
                        UPDATE credential SET attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL,
                          attempt_recovery_of = NULL, failures = 0, backoff_until = NULL, last_error_json = NULL, last_error_mac = NULL,
                          lease_owner = CASE WHEN lease_owner = $owner THEN NULL ELSE lease_owner END,
                          lease_until = CASE WHEN lease_owner = $owner THEN NULL ELSE lease_until END
                        WHERE id = $id
                        """;
                    command.Parameters.AddWithValue("$owner", patch.CompletesRefreshOf);
                }
                AddContent(command, content, row.Id, _codec.SealCredential(row.Id, row.Name, row.Kind, row.Version + 1, content));
                command.Parameters.AddWithValue("$version", row.Version);
                command.ExecuteNonQuery();
            }

            Prune(connection, transaction, row.Id);
            var written = Decode(ReadRow(connection, transaction, name)!);
            transaction.Commit();
            return new WriteResult(WriteOutcome.Written, written);
        }));
    }

    public Task<bool> RemoveAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText =
                """
                DELETE FROM credential_history WHERE credential_id = (SELECT id FROM credential WHERE name = $name);
                DELETE FROM credential WHERE name = $name;
                """;
            command.Parameters.AddWithValue("$name", name);
            command.ExecuteNonQuery();
            using var changes = connection.CreateCommand();
            changes.Transaction = transaction;
            changes.CommandText = "SELECT changes()";
            var removed = Convert.ToInt64(changes.ExecuteScalar()) > 0;
            transaction.Commit();
            return removed;
        }));
    }

    public Task<IReadOnlyList<CredentialVersion>> GetHistoryAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run<IReadOnlyList<CredentialVersion>>(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {StoredRow.SavedColumns} FROM {StoredRow.SavedFrom} WHERE c.name = $name ORDER BY h.version DESC";
            command.Parameters.AddWithValue("$name", name);
            using var reader = command.ExecuteReader();
            var versions = new List<CredentialVersion>();
            while (reader.Read())
            {
                versions.Add(_codec.Version(StoredRow.From(reader, 0)));
            }

            return versions;
        }));
    }

    public Task<WriteResult> RestoreAsync(string name, long version, WriteCondition condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(condition);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            var row = ReadRow(connection, transaction, name);
            if (row is null)
            {
                return new WriteResult(WriteOutcome.NotFound, null);
            }

            if (!condition.IsSatisfiedBy(row.Version, row.RefreshTokenFingerprint))
            {
                return new WriteResult(WriteOutcome.ConditionFailed, Decode(row));
            }

            StoredRow? saved;
            using (var select = connection.CreateCommand())
            {
                select.Transaction = transaction;
                select.CommandText = $"SELECT {StoredRow.SavedColumns} FROM {StoredRow.SavedFrom} WHERE h.credential_id = $id AND h.version = $version";
                select.Parameters.AddWithValue("$id", row.Id);
                select.Parameters.AddWithValue("$version", version);
                using var reader = select.ExecuteReader();
                saved = reader.Read() ? StoredRow.From(reader, 0) : null;
            }

            if (saved is null)
            {
                return new WriteResult(WriteOutcome.NotFound, Decode(row));
            }

            var restored = _codec.DecodeSaved(saved);
            if (restored.State == CredentialState.Quarantined)
            {
                return new WriteResult(WriteOutcome.Quarantined, restored);
            }

            Archive(connection, transaction, row);
            using (var command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText =
                    """
                    UPDATE credential SET version = version + 1, state = $state, reason_json = $reason, metadata_json = $metadata,
                      key_id = $key_id, secret_ct = $secret_ct, rt_fp = $rt_fp, at_fp = $at_fp, updated_at = $now, updated_by = $by, row_mac = $mac,
                      attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL, attempt_recovery_of = NULL,
                      failures = 0, backoff_until = NULL, last_error_json = NULL, last_error_mac = NULL
                    WHERE id = $id AND version = $current
                    """;
                var content = RowCodec.Content(saved, FingerprintOrNull(restored.Secrets.AccessToken));
                AddContent(command, content, row.Id, _codec.SealCredential(row.Id, row.Name, row.Kind, row.Version + 1, content));
                command.Parameters.AddWithValue("$current", row.Version);
                command.ExecuteNonQuery();
            }

            Prune(connection, transaction, row.Id);
            var written = Decode(ReadRow(connection, transaction, name)!);
            transaction.Commit();
            return new WriteResult(WriteOutcome.Written, written);
        }));
    }

    public string Fingerprint(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _protector.Fingerprint(token);
    }

    public Task<bool> TryAcquireLeaseAsync(string name, string owner, string? observedOwner, long observedEpoch, TimeSpan duration, CancellationToken cancellationToken) =>
        Coordinate(
            """
            UPDATE credential SET lease_owner = $owner, lease_until = $until, lease_epoch = lease_epoch + 1
            WHERE name = $name AND lease_owner IS $observed AND lease_epoch = $epoch
            """,
            [("$name", name), ("$owner", owner), ("$until", _time.GetUtcNow().Add(duration).ToUnixTimeMilliseconds()), ("$observed", observedOwner), ("$epoch", observedEpoch)],
            cancellationToken);

    public Task<bool> RenewLeaseAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken) =>
        Coordinate(
            "UPDATE credential SET lease_until = $until WHERE name = $name AND lease_owner = $owner",
            [("$name", name), ("$owner", owner), ("$until", _time.GetUtcNow().Add(duration).ToUnixTimeMilliseconds())],
            cancellationToken);

    public Task<bool> ReleaseLeaseAsync(string name, string owner, CancellationToken cancellationToken) =>
        Coordinate(
            "UPDATE credential SET lease_owner = NULL, lease_until = NULL WHERE name = $name AND lease_owner = $owner",
            [("$name", name), ("$owner", owner)],
            cancellationToken);

    public Task<bool> MarkAttemptAsync(string name, string owner, string attemptId, string? refreshTokenFingerprint, string? recoveryOf, CancellationToken cancellationToken) =>
        Coordinate(
            """
            UPDATE credential SET attempt_id = $attempt, attempt_rt_fp = $fp, attempt_owner = $owner, attempt_sent_at = $now, attempt_recovery_of = $recovery
            WHERE name = $name AND lease_owner = $owner AND rt_fp IS $fp
            """,
            [("$name", name), ("$owner", owner), ("$attempt", attemptId), ("$fp", refreshTokenFingerprint), ("$now", _time.GetUtcNow().ToUnixTimeMilliseconds()), ("$recovery", recoveryOf)],
            cancellationToken);

    public Task<bool> RecordRefreshFailureAsync(string name, string owner, StateReason error, DateTimeOffset backoffUntil, bool clearAttempt, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(error, StoreJsonContext.Default.StateReason);
        return Coordinate(
            $"""
            UPDATE credential SET failures = failures + 1, backoff_until = $backoff, last_error_json = $error, last_error_mac = $error_mac,
              {(clearAttempt ? "attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL, attempt_recovery_of = NULL," : string.Empty)}
              lease_owner = NULL, lease_until = NULL
            WHERE name = $name AND lease_owner = $owner
            """,
            [("$name", name), ("$owner", owner), ("$backoff", backoffUntil.ToUnixTimeMilliseconds()), ("$error", json), ("$error_mac", _codec.SealDiagnostic(name, RowCodec.LastErrorColumn, json))],
            cancellationToken);
    }

    public Task<bool> RecordUpstreamFailureAsync(string name, UpstreamFailure? failure, CancellationToken cancellationToken)
    {
        var json = failure is null ? null : JsonSerializer.Serialize(failure, StoreJsonContext.Default.UpstreamFailure);
        return Coordinate(
            "UPDATE credential SET upstream_failure_json = $failure, upstream_failure_mac = $mac WHERE name = $name",
            [("$name", name), ("$failure", json), ("$mac", _codec.SealDiagnostic(name, RowCodec.UpstreamFailureColumn, json))],
            cancellationToken);
    }

    private Task<bool> Coordinate(string sql, (string Name, object? Value)[] parameters, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            foreach (var (parameterName, value) in parameters)
            {
                command.Parameters.AddWithValue(parameterName, value ?? DBNull.Value);
            }

            return command.ExecuteNonQuery() > 0;
        }));
    }

    /// <summary>Runs SQLite's <c>integrity_check</c>: an empty list means the database file is sound.</summary>
    public IReadOnlyList<string> CheckIntegrity() => Run<IReadOnlyList<string>>(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA integrity_check";
        using var reader = command.ExecuteReader();
        var problems = new List<string>();
        while (reader.Read())
        {
            var line = reader.GetString(0);
            if (!string.Equals(line, "ok", StringComparison.Ordinal))
            {
                problems.Add(line);
            }
        }

        return problems;
    });

    /// <summary>
    /// Whether the store's record that its rows are sealed (written when they were first sealed) is there and
    /// matches its own seal; false means someone removed or changed it (used by <c>doctor</c>).
    /// </summary>
    public bool RowsSealedMarkerIntact() => Run(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT value FROM store_meta WHERE name = $name";
        command.Parameters.AddWithValue("$name", RowCodec.RowsSealedMarkerName);
        return _codec.IsRowsSealedMarker(command.ExecuteScalar() as string);
    });

    /// <summary>Seals and opens a probe, proving the key works (used by <c>doctor</c>).</summary>
    public bool SelfTest()
    {
        var probe = RandomNumberGenerator.GetBytes(32);
        var sealedProbe = _protector.Seal(probe, "self-test");
        var ok = _protector.TryOpen(sealedProbe, "self-test", _protector.KeyId, out var opened, out _) && opened.AsSpan().SequenceEqual(probe);
        CryptographicOperations.ZeroMemory(opened);
        return ok;
    }

    /// <summary>Moves the write-ahead log into the database file and empties it.</summary>
    public void Checkpoint() => Run(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
        command.ExecuteNonQuery();
        return 0;
    });

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    public void Dispose()
    {
        _protector.Dispose();
        using (var connection = new SqliteConnection(_connectionString))
        {
            SqliteConnection.ClearPool(connection);
        }
    }

    /// <summary>
    /// A missing key file is made afresh only for a store that holds nothing sealed under a key: a new key would
    /// open none of the old secrets, and everything written with it would be lost when the old key came back.
    /// </summary>
    private static void RefuseNewKeyBesideSealedData(StoreHome home)
    {
        long sealedRows;
        try
        {
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = home.DatabasePath,
                Mode = SqliteOpenMode.ReadWrite,
                Pooling = false,
                DefaultTimeout = (int)BusyTimeout.TotalSeconds,
            }.ToString());
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('credential', 'credential_history', 'client_key')";
            var tables = new List<string>();
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            if (tables.Count == 0)
            {
                return;
            }

            command.CommandText = "SELECT " + string.Join(" + ", tables.Select(t => $"(SELECT count(*) FROM {t})"));
            sealedRows = (long)command.ExecuteScalar()!;
        }
        catch (SqliteException ex)
        {
            throw Translate(home, ex);
        }

        // Another process may have made the key and written since the first look: a row implies its key exists.
        if (sealedRows > 0 && !File.Exists(home.KeyFilePath))
        {
            throw new StoreException("key_missing",
                $"The master key file {home.KeyFilePath} is missing, but {home.DatabasePath} holds secrets sealed with it, which no new key can open. Nothing was changed and no new key was made. Restore master.key from the backup of the home folder (the one saved with latchkey.db), then run 'latchkey doctor'; to start over without those secrets, move latchkey.db aside.");
        }
    }

    private static void PrecreateDatabase(string path)
    {
        if (File.Exists(path))
        {
            return;
        }

        var options = StoreHome.PrivateFileOptions(FileMode.OpenOrCreate, FileAccess.Write);
        try
        {
            using var _ = new FileStream(path, options);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StoreException("home_unwritable", $"Cannot create the database {path}: {ex.Message}. Check the folder with 'latchkey doctor'.", innerException: ex);
        }
    }

    private SqliteConnection OpenConnection()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText =
            $"PRAGMA busy_timeout = {(int)BusyTimeout.TotalMilliseconds}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;";
        command.ExecuteNonQuery();
        return connection;
    }

    private T Run<T>(Func<SqliteConnection, T> operation)
    {
        try
        {
            using var connection = OpenConnection();
            return operation(connection);
        }
        catch (SqliteException ex)
        {
            throw Translate(ex);
        }
    }

    private StoreException Translate(SqliteException ex) => Translate(Home, ex);

    private static StoreException Translate(StoreHome home, SqliteException ex) => ex.SqliteErrorCode switch
    {
        5 or 6 => new StoreException("store_busy",
            $"The store at {home.DatabasePath} stayed locked by other processes for {BusyTimeout.TotalSeconds:0} s. Nothing was changed; try again.", retryable: true, innerException: ex),
        11 or 26 => new StoreException("database_corrupt",
            $"The database {home.DatabasePath} is damaged (SQLite: {ex.Message}). Nothing was deleted. Run 'latchkey doctor' for details, then restore the home folder from a backup, or move latchkey.db aside to start an empty store.", innerException: ex),
        13 => new StoreException("disk_full",
            $"The disk holding {home.DatabasePath} is full. Nothing was changed; free some space and try again.", retryable: true, innerException: ex),
        8 => new StoreException("read_only",
            $"The database {home.DatabasePath} is read-only. Check its owner and mode (chmod 600) with 'latchkey doctor'.", innerException: ex),
        14 => new StoreException("cannot_open",
            $"The database {home.DatabasePath} cannot be opened. Check the home folder with 'latchkey doctor'.", innerException: ex),
        _ => new StoreException("store_error",
            $"The store at {home.DatabasePath} failed (SQLite error {ex.SqliteErrorCode}: {ex.Message}). Nothing was changed; 'latchkey doctor' checks the store.", retryable: ex.SqliteErrorCode == 10, innerException: ex),
    };

    /// <summary>
    /// Brings the schema up to date in one <c>BEGIN IMMEDIATE</c> transaction, sealing a store from before seals as
    /// <paramref name="sealing"/> allows; a current store's sealed marker is checked against the home's record.
    /// Returns whether the store is sealed (its marker verifies), so the home can record it.
    /// </summary>
    private bool Migrate(StoreSealing sealing) => Run(connection =>
    {
        using (var journal = connection.CreateCommand())
        {
            journal.CommandText = "PRAGMA journal_mode";
            if (!string.Equals(journal.ExecuteScalar() as string, "wal", StringComparison.OrdinalIgnoreCase))
            {
                journal.CommandText = "PRAGMA journal_mode = WAL";
                var mode = journal.ExecuteScalar() as string;
                if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                {
                    throw new StoreException("journal_mode", $"SQLite refused write-ahead logging for {Home.DatabasePath} (mode '{mode}'). Put the home folder on a local disk.");
                }
            }
        }

        if (ReadUserVersion(connection, null) == SchemaVersion)
        {
            return _codec.CheckSealed(connection, null, Home.DatabasePath, StoreSealing.SqliteIdentity, sealing);
        }

        using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
        var version = ReadUserVersion(connection, transaction);
        if (version > SchemaVersion)
        {
            throw new StoreException("newer_schema",
                $"The store at {Home.DatabasePath} was written by a newer Latchkey (schema {version}; this one knows {SchemaVersion}). Nothing was changed. Upgrade Latchkey.");
        }

        if (version == SchemaVersion)
        {
            return _codec.CheckSealed(connection, transaction, Home.DatabasePath, StoreSealing.SqliteIdentity, sealing); // another process migrated it meanwhile
        }

        for (var next = version + 1; next <= SchemaVersion; next++)
        {
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = SqliteSchema.Migrations[(int)next - 1] + $"; PRAGMA user_version = {next};";
            command.ExecuteNonQuery();
        }

        if (version < SqliteSchema.RowsSealedFrom
            && !_codec.SealExistingRows(connection, transaction, Home.DatabasePath, StoreSealing.SqliteIdentity, version, sealing, _time.GetUtcNow(), _writer))
        {
            transaction.Rollback(); // a preview: nothing is kept
            return false;
        }

        transaction.Commit();
        return version < SqliteSchema.RowsSealedFrom || _codec.CheckSealed(connection, null, Home.DatabasePath, StoreSealing.SqliteIdentity, sealing);
    });

    private static long ReadUserVersion(SqliteConnection connection, SqliteTransaction? transaction)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "PRAGMA user_version";
        return Convert.ToInt64(command.ExecuteScalar());
    }

    private static StoredRow? ReadRow(SqliteConnection connection, SqliteTransaction? transaction, string name)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT {StoredRow.Columns} FROM credential WHERE name = $name";
        command.Parameters.AddWithValue("$name", name);
        using var reader = command.ExecuteReader();
        return reader.Read() ? StoredRow.From(reader, 0) : null;
    }

    private void Archive(SqliteConnection connection, SqliteTransaction transaction, StoredRow row)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText =
            """
            INSERT OR REPLACE INTO credential_history (credential_id, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, written_at, archived_at, row_mac)
            VALUES ($id, $version, $state, $reason, $metadata, $key_id, $secret_ct, $rt_fp, $written, $now, $mac)
            """;
        command.Parameters.AddWithValue("$id", row.Id);
        command.Parameters.AddWithValue("$version", row.Version);
        command.Parameters.AddWithValue("$state", row.State);
        command.Parameters.AddWithValue("$reason", (object?)row.ReasonJson ?? DBNull.Value);
        command.Parameters.AddWithValue("$metadata", row.MetadataJson);
        command.Parameters.AddWithValue("$key_id", row.KeyId);
        command.Parameters.AddWithValue("$secret_ct", row.SealedSecrets);
        command.Parameters.AddWithValue("$rt_fp", (object?)row.RefreshTokenFingerprint ?? DBNull.Value);
        command.Parameters.AddWithValue("$written", row.UpdatedAt);
        command.Parameters.AddWithValue("$now", _time.GetUtcNow().ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$mac", (object?)_codec.SealAsSaved(row) ?? DBNull.Value);
        command.ExecuteNonQuery();
    }

    private void Prune(SqliteConnection connection, SqliteTransaction transaction, string id)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText =
            """
            DELETE FROM credential_history WHERE credential_id = $id AND version NOT IN
              (SELECT version FROM credential_history WHERE credential_id = $id ORDER BY version DESC LIMIT $keep)
            """;
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$keep", HistoryDepth);
        command.ExecuteNonQuery();
    }

    /// <summary>The parameters of a content write: the content columns, who and when, the row's id and its new seal.</summary>
    private void AddContent(SqliteCommand command, PatchedContent content, string id, string seal)
    {
        command.Parameters.AddWithValue("$state", content.State);
        command.Parameters.AddWithValue("$reason", (object?)content.ReasonJson ?? DBNull.Value);
        command.Parameters.AddWithValue("$metadata", content.MetadataJson);
        command.Parameters.AddWithValue("$key_id", content.KeyId);
        command.Parameters.AddWithValue("$secret_ct", content.SealedSecrets);
        command.Parameters.AddWithValue("$rt_fp", (object?)content.RefreshTokenFingerprint ?? DBNull.Value);
        command.Parameters.AddWithValue("$at_fp", (object?)content.AccessTokenFingerprint ?? DBNull.Value);
        command.Parameters.AddWithValue("$now", _time.GetUtcNow().ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$by", _writer);
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$mac", seal);
    }

    private string? FingerprintOrNull(string? token) => _codec.FingerprintOrNull(token);

    private CredentialRecord Decode(StoredRow row) => _codec.Decode(row);
}
