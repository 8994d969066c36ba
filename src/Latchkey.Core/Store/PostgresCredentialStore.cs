using System.Data.Common;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Latchkey.Telemetry;
using Npgsql;

namespace Latchkey.Store;

/// <summary>
/// The shared backend for a team gateway: the same records, history, coordination and client keys as
/// <see cref="SqliteCredentialStore"/>, in a PostgreSQL database that several replicas use at once. The algorithm is
/// <see cref="CredentialStore"/>'s; this class supplies PostgreSQL's steps. See <see cref="ICredentialStore"/> for
/// the contract.
/// </summary>
/// <remarks>
/// <para><b>Transactions.</b> <c>READ COMMITTED</c>. A content write locks the row it reads
/// (<c>SELECT … FOR UPDATE</c>), so its check and its write cannot be separated by another replica. Sessions run
/// with <c>statement_timeout</c> 5 s, <c>idle_in_transaction_session_timeout</c> 10 s and
/// <c>synchronous_commit = on</c>.</para>
/// <para><b>Clock.</b> Lease, attempt and backoff times are taken from the database's <c>clock_timestamp()</c>.
/// Every read also reads the database's clock, and reports those times shifted onto this process's
/// <see cref="TimeProvider"/>, so a replica whose clock is off still sees how long a lease has left.</para>
/// <para><b>Secrets.</b> Sealed by <see cref="SecretProtector"/> before they are sent; the database holds only
/// ciphertext, fingerprints and the key's id. The key itself comes from a key file the replicas share.</para>
/// <para><b>Connections.</b> Pooled by one <see cref="NpgsqlDataSource"/>. When PostgreSQL goes away, operations
/// fail with a retryable <see cref="StoreException"/> (<c>store_unavailable</c>), the pool is emptied, and the
/// first operation after PostgreSQL is back opens fresh connections. Reads are tried once more on a broken
/// connection; writes never are, since a lost answer to a commit is not proof that it failed.</para>
/// </remarks>
internal sealed partial class PostgresCredentialStore : CredentialStore
{
    /// <summary>The schema this build writes. An older database is migrated forward; a newer one is refused.</summary>
    public static int SchemaVersion => PostgresSchema.Migrations.Count;

    private readonly NpgsqlDataSource _dataSource;

    private PostgresCredentialStore(PostgresLocation location, SecretProtector protector, TimeProvider time)
        : base(protector, time)
    {
        Location = location.ToString();
        var builder = new NpgsqlConnectionStringBuilder(location.Builder.ConnectionString)
        {
            Pooling = true,
            CommandTimeout = 15,
            IncludeErrorDetail = false, // server detail can quote values; messages must never carry them
        };
        builder.ApplicationName ??= "latchkey";
        builder.Options = ((builder.Options ?? string.Empty) +
            " -c statement_timeout=5000 -c idle_in_transaction_session_timeout=10000 -c synchronous_commit=on").Trim();
        _dataSource = NpgsqlDataSource.Create(builder);
    }

    public override string Backend => "postgresql";

    /// <summary>The database as a URL without its password.</summary>
    public override string Location { get; }

    private protected override string LockRows => " FOR UPDATE";

    private protected override string Now => PostgresSchema.NowMs;

    private protected override string NameOrder => "name COLLATE \"C\"";

    private protected override string Greatest => "GREATEST";

    /// <summary>The database's clock at the start of the statement: one value however often a statement uses it, the same for every replica.</summary>
    private protected override string LimitNow => "(extract(epoch FROM statement_timestamp()) * 1000000)::bigint";

    /// <summary>
    /// Opens the store at <paramref name="location"/>: brings the schema up to date (safely when other replicas
    /// start at the same time) and checks that the database's secrets are sealed with the same master key.
    /// Takes ownership of <paramref name="protector"/>. With <paramref name="readOnly"/> (for <c>doctor</c>), nothing is
    /// written: a schema that is not current, or a key that does not match, is refused instead. A store from before
    /// seals is sealed only as <paramref name="sealing"/> allows (<see cref="StoreSealing"/>); without it, never on
    /// open (as with a shared key file, and no home to record in).
    /// </summary>
    /// <exception cref="StoreException">The store cannot be used; the message says why and what to do.</exception>
    public static PostgresCredentialStore Open(PostgresLocation location, SecretProtector protector, TimeProvider time, bool readOnly = false, StoreSealing? sealing = null)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(protector);
        ArgumentNullException.ThrowIfNull(time);
        sealing ??= StoreSealing.ForSharedKey(null);
        var store = new PostgresCredentialStore(location, protector, time);
        try
        {
            var identity = StoreSealing.IdentityOf(location);
            var isSealed = readOnly ? store.CheckSchemaCurrent(identity, sealing) : store.Migrate(identity, sealing);
            if (sealing.Mode == SealMode.Preview && sealing.Found is not null)
            {
                return store; // only looked: nothing of the store was written, not even the key's id
            }

            store.CheckKey(record: !readOnly);
            if (isSealed)
            {
                sealing.Remember(identity, protector.KeyId, time.GetUtcNow());
            }

            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await _dataSource.DisposeAsync().ConfigureAwait(false);
        Protector.Dispose();
    }

    public override void Dispose()
    {
        _dataSource.Dispose();
        Protector.Dispose();
    }

    private protected override async ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await ((NpgsqlConnection)connection).BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Runs one operation on a pooled connection. A lost connection empties the pool (its other connections are
    /// as dead) and becomes a retryable <see cref="StoreException"/>; an idempotent operation is tried once more
    /// on a fresh connection first.
    /// </summary>
    private protected override async Task<T> RunAsync<T>(Func<DbConnection, CancellationToken, ValueTask<T>> operation, bool idempotent, CancellationToken cancellationToken, [CallerMemberName] string operationName = "")
    {
        cancellationToken.ThrowIfCancellationRequested();
        var started = Time.GetTimestamp();
        try
        {
            return await RunOnceOrTwiceAsync(operation, idempotent, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            LatchkeyTelemetry.RecordStoreOperation(Backend, operationName, Time, started);
        }
    }

    private async Task<T> RunOnceOrTwiceAsync<T>(Func<DbConnection, CancellationToken, ValueTask<T>> operation, bool idempotent, CancellationToken cancellationToken)
    {
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

    private protected override T Run<T>(Func<DbConnection, T> operation)
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
}
