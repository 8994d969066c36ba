using System.Data;
using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Latchkey.Telemetry;
using Microsoft.Data.Sqlite;

namespace Latchkey.Store;

/// <summary>
/// The embedded default backend: one SQLite database in the home folder, in WAL mode with
/// <c>synchronous=FULL</c>, every write one <c>BEGIN IMMEDIATE</c> transaction, a busy timeout sized for 50
/// processes writing at once. The algorithm is <see cref="CredentialStore"/>'s; this class supplies SQLite's steps.
/// See <see cref="ICredentialStore"/> for the contract.
/// </summary>
/// <remarks>
/// <para><b>Locking.</b> Conditions are checked inside the write transaction, which holds SQLite's single write lock
/// from its first statement (<c>BEGIN IMMEDIATE</c>): a check and the write it guards cannot be separated by another
/// writer in any process, so rows need no lock of their own.</para>
/// <para><b>Clock.</b> Every time is this process's (<see cref="TimeProvider"/>), bound as <c>@now</c>: the processes
/// sharing the file share the machine's clock.</para>
/// <para><b>Connections.</b> Each operation takes a pooled connection of its own, so an instance is safe to share
/// between threads. Microsoft.Data.Sqlite runs every call synchronously, so an operation completes before its task is
/// returned; once started it runs to its end, as a lock held for microseconds should.</para>
/// </remarks>
internal sealed partial class SqliteCredentialStore : CredentialStore
{
    /// <summary>The schema this build writes. An older database is migrated forward; a newer one is refused.</summary>
    public static int SchemaVersion => SqliteSchema.Migrations.Count;

    /// <summary>How long a writer waits for the write lock before giving up (50 processes at once fit easily).</summary>
    public static readonly TimeSpan BusyTimeout = TimeSpan.FromSeconds(30);

    private readonly string _connectionString;

    private SqliteCredentialStore(StoreHome home, SecretProtector protector, TimeProvider time)
        : base(protector, time)
    {
        Home = home;
        _keyLimits = new MemoryKeyLimitCounters(time);
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

    /// <summary>
    /// The credential names in <paramref name="home"/>'s database, read with a read-only connection and without the
    /// master key: nothing is created, migrated, sealed or asked of a keychain (for shell completion, which runs on
    /// every Tab). Only names <see cref="CredentialNames"/> accepts come back: a row rewritten by someone who can
    /// write the file may hold any text, and a completion is pasted into the user's shell line. Empty when there is
    /// no database or it cannot be read.
    /// </summary>
    public static IReadOnlyList<string> ReadNames(StoreHome home)
    {
        if (!File.Exists(home.DatabasePath))
        {
            return [];
        }

        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = home.DatabasePath,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
            DefaultTimeout = 2,
        }.ToString();
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name FROM credential ORDER BY name";
        using var reader = command.ExecuteReader();
        var names = new List<string>();
        while (reader.Read())
        {
            if (!reader.IsDBNull(0) && reader.GetString(0) is var name && CredentialNames.Validate(name) is null)
            {
                names.Add(name);
            }
        }

        return names;
    }


    public override string Backend => "sqlite";

    public override string Location => Home.DatabasePath;

    private protected override string LockRows => string.Empty;

    private protected override string Now => "@now";

    private protected override string NameOrder => "name";

    private protected override string Greatest => "max";

    private protected override string LimitNow => "@now_us";

    private readonly MemoryKeyLimitCounters _keyLimits;

    /// <summary>
    /// In this gateway's memory: a home's SQLite store has one gateway (it locks the home), which sees every request,
    /// so the counts are exact without a write per request. (The SQL counters stay available to the contract suite.)
    /// </summary>
    public override IKeyLimitCounters KeyLimits => _keyLimits;

    /// <summary>
    /// Opens (creating when missing) the store in <paramref name="home"/>: checks the folder, loads or creates the
    /// master key, pre-creates the database 0600, and brings the schema up to date. A store from before seals is
    /// sealed then only as <paramref name="sealing"/> allows; by default (the key is the home's <c>master.key</c>),
    /// once, unless the home recorded the store as sealed before (<see cref="StoreSealing"/>).
    /// </summary>
    /// <exception cref="StoreException">The store cannot be used; the message says why and what to do.</exception>
    public static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing = null) =>
        Open(home, time, sealing, MasterKeys.For(home));

    /// <summary>
    /// Opens the store with the master key <paramref name="keys"/> finds or makes (see <see cref="MasterKeys"/>): a
    /// new key only beside no sealed data, an item found in the keychain without a note only if it is the key the
    /// store's seals record, and, with the key in a keychain, a store from before seals never sealed on open
    /// (<see cref="StoreSealing.WithKeyInKeychain"/>).
    /// </summary>
    public static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing, MasterKeys keys) =>
        Open(home, time, sealing,
            () => keys.LoadOrCreate(() => RefuseNewKeyBesideSealedData(home, keys), keyId => AdoptionProblem(home, keyId)),
            () => keys.Where() == MasterKeyPlace.Keychain);

    /// <summary>Opens the store with exactly <paramref name="masterKey"/> (for <c>latchkey key move</c>, which checks a key read back from its new place).</summary>
    public static SqliteCredentialStore OpenWithKey(StoreHome home, TimeProvider time, ReadOnlySpan<byte> masterKey)
    {
        var copy = masterKey.ToArray();
        return Open(home, time, null, () => copy, null);
    }

    private static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing, Func<byte[]> loadKey, Func<bool>? keyInKeychain)
    {
        home.EnsureReady();

        // The key before the database: a keychain that is locked leaves no database behind.
        var key = loadKey();
        sealing ??= StoreSealing.ForHomeKey(SealLedger.In(home));
        if (keyInKeychain?.Invoke() == true)
        {
            sealing = sealing.WithKeyInKeychain();
        }

        PrecreateDatabase(home.DatabasePath);
        foreach (var file in new[] { home.DatabasePath, home.DatabasePath + "-wal", home.DatabasePath + "-shm" })
        {
            if (StoreHome.CheckFileMode(file) is { } problem)
            {
                CryptographicOperations.ZeroMemory(key);
                throw new StoreException("file_permissions", problem);
            }
        }

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
            store.UseWriteAheadLog();
            if (store.Migrate(StoreSealing.SqliteIdentity, sealing))
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

    /// <summary>Moves the write-ahead log into the database file and empties it.</summary>
    public void Checkpoint() => Run(connection =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
        command.ExecuteNonQuery();
        return 0;
    });

    public override ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    public override void Dispose()
    {
        Protector.Dispose();
        using (var connection = new SqliteConnection(_connectionString))
        {
            SqliteConnection.ClearPool(connection);
        }
    }

    /// <summary>
    /// A missing key file is made afresh only for a store that holds nothing sealed under a key: a new key would
    /// open none of the old secrets, and everything written with it would be lost when the old key came back.
    /// </summary>
    private static void RefuseNewKeyBesideSealedData(StoreHome home, MasterKeys keys)
    {
        var (rows, _) = ReadKeyRecords(home);

        // Called under the key lock after a second look: a row implies its key exists somewhere the home no longer says.
        if (rows > 0 && keys.Where() == MasterKeyPlace.None)
        {
            throw new StoreException("key_missing",
                $"The master key file {home.KeyFilePath} is missing (and {keys.NotePath} does not say it is in the OS keychain), but {home.DatabasePath} holds secrets sealed with it, which no new key can open. Nothing was changed and no new key was made. Restore master.key from the backup of the home folder (the one saved with latchkey.db), then run 'latchkey doctor'; to start over without those secrets, move latchkey.db aside.");
        }
    }

    /// <summary>
    /// Why an item found in the keychain for this home (which has no note of it) must not be adopted: the home's data
    /// is sealed under another key, or records no key to check it against. Null when it may be: a home with no sealed
    /// data, or one whose every record of its key (the seal ledger, the store's <c>key_id</c>, every secret's key id)
    /// names this key.
    /// </summary>
    private static string? AdoptionProblem(StoreHome home, string itemKeyId)
    {
        var ledger = SealLedger.In(home);
        var entry = ledger.Find(StoreSealing.SqliteIdentity);
        var (rows, recorded) = ReadKeyRecords(home);
        if (entry?.KeyId is { } ledgerKey)
        {
            recorded.Add(ledgerKey);
        }

        if (entry is null && rows == 0 && recorded.Count == 0)
        {
            return null; // nothing sealed yet: any key will do
        }

        if (recorded.Count == 0)
        {
            return $"{home.DatabasePath} holds sealed data but records no key id to check the item against";
        }

        return recorded.All(id => string.Equals(id, itemKeyId, StringComparison.Ordinal))
            ? null
            : $"this home's data is sealed with key {string.Join(", ", recorded.Where(id => !string.Equals(id, itemKeyId, StringComparison.Ordinal)))} (as {home.DatabasePath} and {ledger.Folder} record)";
    }

    /// <summary>
    /// What the home's database holds under a master key: its rows (credentials, saved versions, client keys) and the
    /// master key ids it records (the store's <c>key_id</c>, every secret's and saved version's key id). Reads only.
    /// </summary>
    private static readonly string[] RowTables = ["credential", "credential_history", "client_key"];

    private static readonly string[] SecretTables = ["credential", "credential_history"];

    private static (long Rows, SortedSet<string> KeyIds) ReadKeyRecords(StoreHome home)
    {
        var keyIds = new SortedSet<string>(StringComparer.Ordinal);
        if (!File.Exists(home.DatabasePath))
        {
            return (0, keyIds);
        }

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
            command.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('credential', 'credential_history', 'client_key', 'store_meta')";
            var tables = new HashSet<string>(StringComparer.Ordinal);
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            var counted = RowTables.Where(tables.Contains).ToList();
            long rows = 0;
            if (counted.Count > 0)
            {
                command.CommandText = "SELECT " + string.Join(" + ", counted.Select(t => $"(SELECT count(*) FROM {t})"));
                rows = (long)command.ExecuteScalar()!;
            }

            var sources = new List<string>();
            if (tables.Contains("store_meta"))
            {
                sources.Add("SELECT value FROM store_meta WHERE name = 'key_id'");
            }

            // The master key's id beside each secret (client_key.key_id is a client key's own id, not the master key's).
            sources.AddRange(SecretTables.Where(tables.Contains).Select(t => $"SELECT DISTINCT key_id FROM {t}"));
            if (sources.Count > 0)
            {
                command.CommandText = string.Join(" UNION ", sources);
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    if (!reader.IsDBNull(0))
                    {
                        keyIds.Add(reader.GetString(0));
                    }
                }
            }

            return (rows, keyIds);
        }
        catch (SqliteException ex)
        {
            throw Translate(home, ex);
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

    private protected override ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken) =>
        ValueTask.FromResult<DbTransaction>(((SqliteConnection)connection).BeginTransaction(IsolationLevel.Serializable, deferred: false));

    /// <remarks>
    /// The token is checked before the operation starts; the operation itself gets none. It runs synchronously to its
    /// end (its statements take microseconds once the lock is held), so a caller giving up never undoes a write that
    /// was under way, such as a refresh whose rotated token must be kept.
    /// </remarks>
    private protected override async Task<T> RunAsync<T>(Func<DbConnection, CancellationToken, ValueTask<T>> operation, bool idempotent, CancellationToken cancellationToken, [CallerMemberName] string operationName = "")
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Time.GetTimestamp();
        try
        {
            await using var connection = OpenConnection();
            return await operation(connection, CancellationToken.None).ConfigureAwait(false);
        }
        catch (SqliteException ex)
        {
            throw Translate(ex);
        }
        finally
        {
            LatchkeyTelemetry.RecordStoreOperation(Backend, operationName, Time, started);
        }
    }

    private protected override T Run<T>(Func<DbConnection, T> operation)
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
}
