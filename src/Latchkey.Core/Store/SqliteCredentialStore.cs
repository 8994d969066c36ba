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

    public override string Backend => "sqlite";

    public override string Location => Home.DatabasePath;

    private protected override string LockRows => string.Empty;

    private protected override string Now => "@now";

    private protected override string NameOrder => "name";

    /// <summary>
    /// Opens (creating when missing) the store in <paramref name="home"/>: checks the folder, loads or creates the
    /// master key, pre-creates the database 0600, and brings the schema up to date. A store from before seals is
    /// sealed then only as <paramref name="sealing"/> allows; by default (the key is the home's <c>master.key</c>),
    /// once, unless the home recorded the store as sealed before (<see cref="StoreSealing"/>).
    /// </summary>
    /// <exception cref="StoreException">The store cannot be used; the message says why and what to do.</exception>
    public static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing = null) =>
        Open(home, time, sealing, MasterKeys.For(home));

    /// <summary>Opens the store with the master key <paramref name="keys"/> finds or makes (see <see cref="MasterKeys"/>).</summary>
    public static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing, MasterKeys keys) =>
        Open(home, time, sealing, () => keys.LoadOrCreate(() => RefuseNewKeyBesideSealedData(home, keys)));

    /// <summary>Opens the store with exactly <paramref name="masterKey"/> (for <c>latchkey key move</c>, which checks a key read back from its new place).</summary>
    public static SqliteCredentialStore OpenWithKey(StoreHome home, TimeProvider time, ReadOnlySpan<byte> masterKey)
    {
        var copy = masterKey.ToArray();
        return Open(home, time, null, () => copy);
    }

    private static SqliteCredentialStore Open(StoreHome home, TimeProvider time, StoreSealing? sealing, Func<byte[]> loadKey)
    {
        home.EnsureReady();

        // The key before the database: a keychain that is locked leaves no database behind.
        var key = loadKey();
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
            sealing ??= StoreSealing.ForHomeKey(SealLedger.In(home));
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
        if (!File.Exists(home.DatabasePath))
        {
            return;
        }

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
        if (sealedRows > 0 && keys.Where() == MasterKeyPlace.None)
        {
            throw new StoreException("key_missing",
                $"The master key file {home.KeyFilePath} is missing (and {keys.NotePath} does not say it is in the OS keychain), but {home.DatabasePath} holds secrets sealed with it, which no new key can open. Nothing was changed and no new key was made. Restore master.key from the backup of the home folder (the one saved with latchkey.db), then run 'latchkey doctor'; to start over without those secrets, move latchkey.db aside.");
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
