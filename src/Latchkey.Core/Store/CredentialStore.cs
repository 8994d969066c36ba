using System.Data.Common;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;

namespace Latchkey.Store;

/// <summary>
/// The store's algorithm, written once for both backends: reading and decoding records, the content write, restore,
/// remove, refresh coordination (this file), client keys, the audit log and schema migrations (the other parts).
/// See <see cref="ICredentialStore"/> for the contract.
/// </summary>
/// <remarks>
/// <para><b>One algorithm, backends that supply the steps that differ.</b> An abstract base holds every sequence, and
/// one sealed class per backend (<see cref="SqliteCredentialStore"/>, <see cref="PostgresCredentialStore"/>)
/// overrides only what differs between them (the shape of Git Credential Manager's credential store): how a connection is opened and
/// its failures mapped (<see cref="RunAsync"/>), how a write takes its lock (<see cref="BeginWriteAsync"/>,
/// <see cref="LockRows"/>), which clock coordination times are kept on (<see cref="Now"/>), the order of names
/// (<see cref="NameOrder"/>), the audit log's batch insert, and the schema with its migration steps. A base class
/// rather than a separate dialect object, because those steps need the backend's own state (its pool, its location
/// for messages) and each backend has a few members of its own (SQLite's integrity check, PostgreSQL's read-only
/// open for <c>doctor</c>) that sit naturally beside them.</para>
/// <para><b>Shared SQL.</b> Both backends keep one row format (<see cref="StoredRow"/>), and every statement here is
/// valid in both (<c>ON CONFLICT</c>, <c>RETURNING</c>, <c>IS NOT DISTINCT FROM</c>), bound through
/// <see cref="StoreSql"/>.</para>
/// <para><b>The content write</b> (<see cref="UpdateAsync"/>, <see cref="RestoreAsync"/>): one transaction that
/// reads the row under the write lock, checks the caller's condition, refuses a quarantined (or tampered) record,
/// applies the change, archives the previous version (sealed as a saved version only when it matches its own seal),
/// writes the next version with its new seal (and, for a refresh, clears the attempt and releases the writer's
/// lease: the refresh fence is the condition on the refresh-token fingerprint), prunes the history, reads the record
/// back and commits. Coordination writes are one conditional <c>UPDATE</c> each.</para>
/// </remarks>
internal abstract partial class CredentialStore(SecretProtector protector, TimeProvider time) : ILatchkeyStore, IDisposable
{
    /// <summary>The <c>SET</c> of a content write: the next version with its content, who wrote it and its seal.</summary>
    private const string ContentSet =
        """
        version = version + 1, state = @state, reason_json = @reason, metadata_json = @metadata,
          key_id = @key_id, secret_ct = @secret_ct, rt_fp = @rt_fp, at_fp = @at_fp, updated_at = @now, updated_by = @by, row_mac = @mac
        """;

    /// <summary>Forgets the in-flight token request.</summary>
    private const string ClearAttempt =
        "attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL, attempt_recovery_of = NULL";

    /// <summary>Forgets transient refresh failures and their backoff.</summary>
    private const string ClearFailures = "failures = 0, backoff_until = NULL, last_error_json = NULL, last_error_mac = NULL";

    /// <summary>Releases the lease when <c>@owner</c> holds it, and leaves anyone else's alone.</summary>
    private const string ReleaseOwnersLease =
        """
        lease_owner = CASE WHEN lease_owner = @owner THEN NULL ELSE lease_owner END,
          lease_until = CASE WHEN lease_owner = @owner THEN NULL ELSE lease_until END
        """;

    public abstract string Backend { get; }

    public abstract string Location { get; }

    public int HistoryDepth => 10;

    /// <summary>The id of the master key in use.</summary>
    public string KeyId => Protector.KeyId;

    private protected SecretProtector Protector { get; } = protector;

    /// <summary>Decoding, sealing and seal checks: every row either backend reads passes through it.</summary>
    private protected RowCodec Codec { get; } = new(protector);

    private protected TimeProvider Time { get; } = time;

    /// <summary>This machine and process, as recorded in <c>updated_by</c> and <c>schema_version</c>.</summary>
    private protected string Writer { get; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    /// <summary>
    /// Runs one operation on a connection of the backend's and turns the backend's failures into
    /// <see cref="StoreException"/>. <paramref name="idempotent"/>: the operation changes nothing, or changes nothing
    /// more when repeated, so it may be tried again on a fresh connection, and a failure says nothing was changed.
    /// Its duration is recorded under <paramref name="operationName"/> (the calling method's name, filled in by the
    /// compiler: <see cref="Telemetry.LatchkeyTelemetry.StoreOperationDuration"/>).
    /// </summary>
    private protected abstract Task<T> RunAsync<T>(Func<DbConnection, CancellationToken, ValueTask<T>> operation, bool idempotent, CancellationToken cancellationToken, [CallerMemberName] string operationName = "");

    /// <summary>The same, synchronously: for opening the store and for <c>doctor</c>'s checks.</summary>
    private protected abstract T Run<T>(Func<DbConnection, T> operation);

    /// <summary>
    /// Begins a write transaction that keeps a check and the write it guards together: no other writer, in any
    /// process or replica, can change the rows it reads with <see cref="LockRows"/> before it commits.
    /// </summary>
    private protected abstract ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>What a <c>SELECT</c> inside a write transaction ends with to lock the rows it reads (empty when the
    /// transaction already holds the whole store's write lock).</summary>
    private protected abstract string LockRows { get; }

    /// <summary>
    /// "Now" in unix milliseconds, as a SQL expression on the clock the coordination times (lease, attempt, backoff)
    /// are kept on: <c>@now</c> (bound on every such statement from this process's <see cref="TimeProvider"/>) or the
    /// database's own clock. Content times (<c>updated_at</c>, <c>archived_at</c>) are always this process's.
    /// </summary>
    private protected abstract string Now { get; }

    /// <summary>The <c>ORDER BY</c> of names: byte order on both backends.</summary>
    private protected abstract string NameOrder { get; }

    public Task<CredentialRecord?> GetAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync(async (connection, ct) =>
            await ReadRowAsync(connection, null, name, lockRow: false, ct).ConfigureAwait(false) is { } row ? Codec.Decode(row) : null,
            idempotent: true, cancellationToken);
    }

    public Task<IReadOnlyList<CredentialRecord>> ListAsync(CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<CredentialRecord>>(async (connection, ct) =>
        {
            var rows = await ReadRowsAsync(connection.Command(null, $"SELECT {StoredRow.Columns}, {Now} FROM credential ORDER BY {NameOrder}"), ct).ConfigureAwait(false);
            return rows.ConvertAll(Codec.Decode);
        }, idempotent: true, cancellationToken);

    public Task<WriteResult> CreateAsync(NewCredential credential, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(credential);
        if (CredentialNames.Validate(credential.Name) is { } problem)
        {
            throw new ArgumentException(problem, nameof(credential));
        }

        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var kind = RowCodec.KindText(credential.Kind);
        var content = Codec.NewContent(credential, id);
        var seal = Codec.SealCredential(id, credential.Name, kind, 1, content);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await BeginWriteAsync(connection, ct).ConfigureAwait(false);
            await using (var insert = connection.Command(transaction,
                """
                INSERT INTO credential (id, name, kind, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, at_fp, created_at, updated_at, updated_by, row_mac)
                VALUES (@id, @name, @kind, 1, @state, @reason, @metadata, @key_id, @secret_ct, @rt_fp, @at_fp, @now, @now, @by, @mac)
                ON CONFLICT (name) DO NOTHING
                """))
            {
                BindContent(insert, content, id, seal).Bind("@name", credential.Name).Bind("@kind", kind);
                if (await insert.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 0)
                {
                    var existing = await ReadRowAsync(connection, transaction, credential.Name, lockRow: false, ct).ConfigureAwait(false);
                    return new WriteResult(WriteOutcome.AlreadyExists, existing is null ? null : Codec.Decode(existing));
                }
            }

            var written = await ReadRowAsync(connection, transaction, credential.Name, lockRow: false, ct).ConfigureAwait(false);
            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return new WriteResult(WriteOutcome.Written, Codec.Decode(written!));
        }, idempotent: false, cancellationToken);
    }

    public Task<WriteResult> UpdateAsync(string name, CredentialPatch patch, WriteCondition condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(condition);
        return WriteAsync(name, condition, async (locked, ct) =>
        {
            var current = Codec.Decode(locked.Row);
            if (current.State == CredentialState.Quarantined)
            {
                return new WriteResult(WriteOutcome.Quarantined, current);
            }

            // A write that completes a refresh also ends it: the attempt and failures are cleared, and the writer's
            // own lease released (another owner's lease is left alone).
            var completesRefresh = patch.CompletesRefreshOf is not null;
            return await WriteNextVersionAsync(locked, Codec.Apply(locked.Row, current, patch),
                completesRefresh ? $", {ClearAttempt}, {ClearFailures}, {ReleaseOwnersLease}" : string.Empty,
                command => completesRefresh ? command.Bind("@owner", patch.CompletesRefreshOf) : command, ct).ConfigureAwait(false);
        }, cancellationToken);
    }

    public Task<bool> RemoveAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);

        // One statement, so one transaction; the history goes with the row (ON DELETE CASCADE on both backends).
        return RunAsync(async (connection, ct) =>
        {
            await using var command = connection.Command(null, "DELETE FROM credential WHERE name = @name").Bind("@name", name);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
        }, idempotent: false, cancellationToken);
    }

    public Task<IReadOnlyList<CredentialVersion>> GetHistoryAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync<IReadOnlyList<CredentialVersion>>(async (connection, ct) =>
        {
            var saved = await ReadRowsAsync(connection.Command(null,
                $"SELECT {StoredRow.SavedColumns}, {Now} FROM {StoredRow.SavedFrom} WHERE c.name = @name ORDER BY h.version DESC").Bind("@name", name), ct).ConfigureAwait(false);
            return saved.ConvertAll(Codec.Version);
        }, idempotent: true, cancellationToken);
    }

    public Task<WriteResult> RestoreAsync(string name, long version, WriteCondition condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(condition);
        return WriteAsync(name, condition, async (locked, ct) =>
        {
            var saved = (await ReadRowsAsync(locked.Connection.Command(locked.Transaction,
                $"SELECT {StoredRow.SavedColumns}, {Now} FROM {StoredRow.SavedFrom} WHERE h.credential_id = @id AND h.version = @version")
                .Bind("@id", locked.Row.Id).Bind("@version", version), ct).ConfigureAwait(false)).FirstOrDefault();
            if (saved is null)
            {
                return new WriteResult(WriteOutcome.NotFound, Codec.Decode(locked.Row));
            }

            // The saved version's own seal decides: one changed outside Latchkey (or copied from another record)
            // decodes as quarantined and is never made current.
            var restored = Codec.DecodeSaved(saved);
            if (restored.State == CredentialState.Quarantined)
            {
                return new WriteResult(WriteOutcome.Quarantined, restored);
            }

            // What the replaced content was refreshing no longer applies: the attempt and failures are cleared.
            return await WriteNextVersionAsync(locked, RowCodec.Content(saved, Codec.FingerprintOrNull(restored.Secrets.AccessToken)),
                $", {ClearAttempt}, {ClearFailures}", command => command, ct).ConfigureAwait(false);
        }, cancellationToken);
    }

    public string Fingerprint(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return Protector.Fingerprint(token);
    }

    public Task<bool> TryAcquireLeaseAsync(string name, string owner, string? observedOwner, long observedEpoch, TimeSpan duration, CancellationToken cancellationToken) =>
        CoordinateAsync(
            $"""
            UPDATE credential SET lease_owner = @owner, lease_until = {Now} + @duration, lease_epoch = lease_epoch + 1
            WHERE name = @name AND lease_owner IS NOT DISTINCT FROM @observed AND lease_epoch = @epoch
            """,
            command => command.Bind("@name", name).Bind("@owner", owner).Bind("@duration", Milliseconds(duration)).Bind("@observed", observedOwner).Bind("@epoch", observedEpoch),
            cancellationToken);

    public Task<bool> RenewLeaseAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken) =>
        CoordinateAsync(
            $"UPDATE credential SET lease_until = {Now} + @duration WHERE name = @name AND lease_owner = @owner",
            command => command.Bind("@name", name).Bind("@owner", owner).Bind("@duration", Milliseconds(duration)),
            cancellationToken);

    public Task<bool> ReleaseLeaseAsync(string name, string owner, CancellationToken cancellationToken) =>
        CoordinateAsync(
            "UPDATE credential SET lease_owner = NULL, lease_until = NULL WHERE name = @name AND lease_owner = @owner",
            command => command.Bind("@name", name).Bind("@owner", owner),
            cancellationToken);

    public Task<bool> MarkAttemptAsync(string name, string owner, string attemptId, string? refreshTokenFingerprint, string? recoveryOf, CancellationToken cancellationToken) =>
        CoordinateAsync(
            $"""
            UPDATE credential SET attempt_id = @attempt, attempt_rt_fp = @fp, attempt_owner = @owner, attempt_sent_at = {Now}, attempt_recovery_of = @recovery
            WHERE name = @name AND lease_owner = @owner AND rt_fp IS NOT DISTINCT FROM @fp
            """,
            command => command.Bind("@name", name).Bind("@owner", owner).Bind("@attempt", attemptId).Bind("@fp", refreshTokenFingerprint).Bind("@recovery", recoveryOf),
            cancellationToken);

    /// <remarks>The backoff is kept on the coordination clock (<see cref="Now"/>): it ends as long after that clock's
    /// "now" as <paramref name="backoffUntil"/> is after this process's.</remarks>
    public Task<bool> RecordRefreshFailureAsync(string name, string owner, StateReason error, DateTimeOffset backoffUntil, bool clearAttempt, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(error, StoreJsonContext.Default.StateReason);
        return CoordinateAsync(
            $"""
            UPDATE credential SET failures = failures + 1, backoff_until = {Now} + @backoff, last_error_json = @error, last_error_mac = @error_mac,
              {(clearAttempt ? ClearAttempt + "," : string.Empty)}
              lease_owner = NULL, lease_until = NULL
            WHERE name = @name AND lease_owner = @owner
            """,
            (command, now) => command.Bind("@name", name).Bind("@owner", owner).Bind("@backoff", backoffUntil.ToUnixTimeMilliseconds() - now)
                .Bind("@error", json).Bind("@error_mac", Codec.SealDiagnostic(name, RowCodec.LastErrorColumn, json)),
            cancellationToken);
    }

    public Task<bool> RecordUpstreamFailureAsync(string name, UpstreamFailure? failure, CancellationToken cancellationToken)
    {
        var json = failure is null ? null : JsonSerializer.Serialize(failure, StoreJsonContext.Default.UpstreamFailure);
        return CoordinateAsync(
            "UPDATE credential SET upstream_failure_json = @failure, upstream_failure_mac = @mac WHERE name = @name",
            command => command.Bind("@name", name).Bind("@failure", json).Bind("@mac", Codec.SealDiagnostic(name, RowCodec.UpstreamFailureColumn, json)),
            cancellationToken);
    }

    /// <summary>
    /// Whether the store's record that its rows are sealed (written when they were first sealed) is there and
    /// matches its own seal; false means someone removed or changed it (used by <c>doctor</c>).
    /// </summary>
    public bool RowsSealedMarkerIntact() => Run(connection =>
    {
        using var command = connection.Command(null, "SELECT value FROM store_meta WHERE name = @name").Bind("@name", RowCodec.RowsSealedMarkerName);
        return Codec.IsRowsSealedMarker(command.ExecuteScalar() as string);
    });

    /// <summary>Seals and opens a probe, proving the key works (used by <c>doctor</c>).</summary>
    public bool SelfTest()
    {
        var probe = RandomNumberGenerator.GetBytes(32);
        var sealedProbe = Protector.Seal(probe, "self-test");
        var ok = Protector.TryOpen(sealedProbe, "self-test", Protector.KeyId, out var opened, out _) && opened.AsSpan().SequenceEqual(probe);
        CryptographicOperations.ZeroMemory(opened);
        return ok;
    }

    public abstract ValueTask DisposeAsync();

    public abstract void Dispose();

    /// <summary>This process's clock in unix milliseconds: content times, and <c>@now</c>.</summary>
    private protected long NowMs() => Time.GetUtcNow().ToUnixTimeMilliseconds();

    private static long Milliseconds(TimeSpan span) => (long)span.TotalMilliseconds;

    private Task<bool> CoordinateAsync(string sql, Func<DbCommand, DbCommand> bind, CancellationToken cancellationToken, [CallerMemberName] string operation = "") =>
        CoordinateAsync(sql, (command, _) => bind(command), cancellationToken, operation);

    /// <summary>One conditional coordination statement; <paramref name="bind"/> gets this process's "now" too.</summary>
    private Task<bool> CoordinateAsync(string sql, Func<DbCommand, long, DbCommand> bind, CancellationToken cancellationToken, [CallerMemberName] string operation = "") =>
        RunAsync(async (connection, ct) =>
        {
            var now = NowMs();
            await using var command = bind(connection.Command(null, sql).Bind("@now", now), now);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
        }, idempotent: false, cancellationToken, operation);

    /// <summary>
    /// The head of every content write: one transaction that reads the record's row under the write lock and checks
    /// <paramref name="condition"/> against it, then hands it to <paramref name="write"/>. A missing record is
    /// <see cref="WriteOutcome.NotFound"/>, a failed condition <see cref="WriteOutcome.ConditionFailed"/>; nothing is
    /// written then, and a transaction <paramref name="write"/> does not commit is rolled back.
    /// </summary>
    private Task<WriteResult> WriteAsync(string name, WriteCondition condition, Func<LockedRow, CancellationToken, ValueTask<WriteResult>> write, CancellationToken cancellationToken) =>
        RunAsync(async (connection, ct) =>
        {
            await using var transaction = await BeginWriteAsync(connection, ct).ConfigureAwait(false);
            var row = await ReadRowAsync(connection, transaction, name, lockRow: true, ct).ConfigureAwait(false);
            if (row is null)
            {
                return new WriteResult(WriteOutcome.NotFound, null);
            }

            return condition.IsSatisfiedBy(row.Version, row.RefreshTokenFingerprint)
                ? await write(new LockedRow(connection, transaction, row), ct).ConfigureAwait(false)
                : new WriteResult(WriteOutcome.ConditionFailed, Codec.Decode(row));
        }, idempotent: false, cancellationToken);

    /// <summary>
    /// The tail of every content write: archives the locked row, writes <paramref name="content"/> as its next version
    /// (also setting <paramref name="alsoSet"/>, whose parameters <paramref name="bind"/> adds), prunes the history to
    /// <see cref="HistoryDepth"/>, reads the record back and commits. The row read back is decoded after the commit: decoding
    /// (decryption, the seal check) needs no lock, and every other writer waits while one is held.
    /// </summary>
    private async ValueTask<WriteResult> WriteNextVersionAsync(LockedRow locked, PatchedContent content, string alsoSet, Func<DbCommand, DbCommand> bind, CancellationToken ct)
    {
        var (connection, transaction, row) = locked;
        var now = NowMs();
        await using (var archive = connection.Command(transaction,
            """
            INSERT INTO credential_history (credential_id, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, written_at, archived_at, row_mac)
            VALUES (@id, @version, @state, @reason, @metadata, @key_id, @secret_ct, @rt_fp, @written, @now, @mac)
            ON CONFLICT (credential_id, version) DO UPDATE SET state = excluded.state, reason_json = excluded.reason_json,
              metadata_json = excluded.metadata_json, key_id = excluded.key_id, secret_ct = excluded.secret_ct, rt_fp = excluded.rt_fp,
              written_at = excluded.written_at, archived_at = excluded.archived_at, row_mac = excluded.row_mac
            """))
        {
            // A row that does not match its own seal is kept without one, so it can never be restored.
            archive.Bind("@id", row.Id).Bind("@version", row.Version).Bind("@state", row.State).Bind("@reason", row.ReasonJson)
                .Bind("@metadata", row.MetadataJson).Bind("@key_id", row.KeyId).Bind("@secret_ct", row.SealedSecrets).Bind("@rt_fp", row.RefreshTokenFingerprint)
                .Bind("@written", row.UpdatedAt).Bind("@now", now).Bind("@mac", Codec.SealAsSaved(row));
            await archive.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await using (var update = connection.Command(transaction, $"UPDATE credential SET {ContentSet}{alsoSet} WHERE id = @id AND version = @version"))
        {
            BindContent(update, content, row.Id, Codec.SealCredential(row.Id, row.Name, row.Kind, row.Version + 1, content), now).Bind("@version", row.Version);
            await bind(update).ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await using (var prune = connection.Command(transaction,
            """
            DELETE FROM credential_history WHERE credential_id = @id AND version NOT IN
              (SELECT version FROM credential_history WHERE credential_id = @id ORDER BY version DESC LIMIT @keep)
            """))
        {
            await prune.Bind("@id", row.Id).Bind("@keep", HistoryDepth).ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        var written = await ReadRowAsync(connection, transaction, row.Name, lockRow: false, ct).ConfigureAwait(false);
        await transaction.CommitAsync(ct).ConfigureAwait(false);
        return new WriteResult(WriteOutcome.Written, Codec.Decode(written!));
    }

    /// <summary>The parameters of a content write: the content columns, who and when, the row's id and its new seal.</summary>
    private DbCommand BindContent(DbCommand command, PatchedContent content, string id, string seal, long? now = null) =>
        command.Bind("@state", content.State).Bind("@reason", content.ReasonJson).Bind("@metadata", content.MetadataJson)
            .Bind("@key_id", content.KeyId).Bind("@secret_ct", content.SealedSecrets).Bind("@rt_fp", content.RefreshTokenFingerprint)
            .Bind("@at_fp", content.AccessTokenFingerprint).Bind("@now", now ?? NowMs()).Bind("@by", Writer).Bind("@id", id).Bind("@mac", seal);

    /// <summary>The current row of the record <paramref name="name"/>, locked with <see cref="LockRows"/> when <paramref name="lockRow"/>.</summary>
    private async ValueTask<StoredRow?> ReadRowAsync(DbConnection connection, DbTransaction? transaction, string name, bool lockRow, CancellationToken ct)
    {
        var rows = await ReadRowsAsync(connection.Command(transaction,
            $"SELECT {StoredRow.Columns}, {Now} FROM credential WHERE name = @name{(lockRow ? LockRows : string.Empty)}").Bind("@name", name), ct).ConfigureAwait(false);
        return rows.Count == 0 ? null : rows[0];
    }

    /// <summary>
    /// Runs (and disposes) <paramref name="command"/>, which selects <see cref="StoredRow.Columns"/> or
    /// <see cref="StoredRow.SavedColumns"/> followed by <see cref="Now"/> (ordinal 28), and reads its rows, moving
    /// coordination times from the clock that wrote them onto this process's (no move at all when that is this
    /// process's clock: <c>@now</c> reads back as bound).
    /// </summary>
    private async ValueTask<List<StoredRow>> ReadRowsAsync(DbCommand command, CancellationToken ct)
    {
        await using (command)
        {
            var now = NowMs();
            command.Bind("@now", now);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var rows = new List<StoredRow>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                rows.Add(StoredRow.From(reader, now - reader.GetInt64(28)));
            }

            return rows;
        }
    }

    /// <summary>A record's current row, read under the write lock inside <see cref="Transaction"/>.</summary>
    private sealed record LockedRow(DbConnection Connection, DbTransaction Transaction, StoredRow Row);
}
