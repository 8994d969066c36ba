using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace Latchkey.Store;

/// <summary>
/// The shared backend for a team gateway: the same records, history, coordination and client keys as
/// <see cref="SqliteCredentialStore"/>, in a PostgreSQL database that several replicas use at once. See
/// <see cref="ICredentialStore"/> for the contract.
/// </summary>
/// <remarks>
/// <para><b>Transactions.</b> <c>READ COMMITTED</c>. A content write is one transaction that locks the row
/// (<c>SELECT … FOR UPDATE</c>), checks its condition, archives the old content, writes and prunes; coordination
/// writes are one conditional <c>UPDATE</c> each. Sessions run with <c>statement_timeout</c> 5 s,
/// <c>idle_in_transaction_session_timeout</c> 10 s and <c>synchronous_commit = on</c>.</para>
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
internal sealed partial class PostgresCredentialStore : ILatchkeyStore, IDisposable
{
    /// <summary>The schema this build writes. An older database is migrated forward; a newer one is refused.</summary>
    public static int SchemaVersion => PostgresSchema.Migrations.Count;

    private readonly NpgsqlDataSource _dataSource;
    private readonly SecretProtector _protector;
    private readonly RowCodec _codec;
    private readonly TimeProvider _time;
    private readonly string _writer;

    private PostgresCredentialStore(PostgresLocation location, SecretProtector protector, TimeProvider time)
    {
        _protector = protector;
        _codec = new RowCodec(protector);
        _time = time;
        _writer = $"{Environment.MachineName}/{Environment.ProcessId}";
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

    public string Backend => "postgresql";

    /// <summary>The database as a URL without its password.</summary>
    public string Location { get; }

    public int HistoryDepth => 10;

    /// <summary>The id of the master key in use.</summary>
    public string KeyId => _protector.KeyId;

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

    public Task<CredentialRecord?> GetAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync(async (connection, ct) =>
            await ReadRowAsync(connection, null, name, forUpdate: false, ct).ConfigureAwait(false) is { } row ? Decode(row) : null,
            idempotent: true, cancellationToken);
    }

    public Task<IReadOnlyList<CredentialRecord>> ListAsync(CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<CredentialRecord>>(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand($"SELECT {StoredRow.Columns}, {PostgresSchema.NowMs} FROM credential ORDER BY name COLLATE \"C\"", connection);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var records = new List<CredentialRecord>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                records.Add(Decode(ReadStoredRow(reader)));
            }

            return records;
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
        var content = _codec.NewContent(credential, id);
        var seal = _codec.SealCredential(id, credential.Name, kind, 1, content);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            await using (var command = new NpgsqlCommand(
                """
                INSERT INTO credential (id, name, kind, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, at_fp, created_at, updated_at, updated_by, row_mac)
                VALUES (@id, @name, @kind, 1, @state, @reason, @metadata, @key_id, @secret_ct, @rt_fp, @at_fp, @now, @now, @by, @mac)
                ON CONFLICT (name) DO NOTHING
                """, connection, transaction))
            {
                AddContent(command, content, id, seal);
                command.Parameters.Add(Text("name", credential.Name));
                command.Parameters.Add(Text("kind", kind));
                if (await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 0)
                {
                    var existing = await ReadRowAsync(connection, transaction, credential.Name, forUpdate: false, ct).ConfigureAwait(false);
                    return new WriteResult(WriteOutcome.AlreadyExists, existing is null ? null : Decode(existing));
                }
            }

            var written = Decode((await ReadRowAsync(connection, transaction, credential.Name, forUpdate: false, ct).ConfigureAwait(false))!);
            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return new WriteResult(WriteOutcome.Written, written);
        }, idempotent: false, cancellationToken);
    }

    public Task<WriteResult> UpdateAsync(string name, CredentialPatch patch, WriteCondition condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(patch);
        ArgumentNullException.ThrowIfNull(condition);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            var row = await ReadRowAsync(connection, transaction, name, forUpdate: true, ct).ConfigureAwait(false);
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

            await ArchiveAsync(connection, transaction, row, ct).ConfigureAwait(false);
            var sql =
                """
                UPDATE credential SET version = version + 1, state = @state, reason_json = @reason, metadata_json = @metadata,
                  key_id = @key_id, secret_ct = @secret_ct, rt_fp = @rt_fp, at_fp = @at_fp, updated_at = @now, updated_by = @by, row_mac = @mac
                """;
            if (patch.CompletesRefreshOf is not null)
            {
                sql +=
                    """
                    ,
                      attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL,
                      attempt_recovery_of = NULL, failures = 0, backoff_until = NULL, last_error_json = NULL, last_error_mac = NULL,
                      lease_owner = CASE WHEN lease_owner = @owner THEN NULL ELSE lease_owner END,
                      lease_until = CASE WHEN lease_owner = @owner THEN NULL ELSE lease_until END
                    """;
            }

            await using (var command = new NpgsqlCommand(sql + " WHERE id = @id AND version = @version", connection, transaction))
            {
                if (patch.CompletesRefreshOf is not null)
                {
                    command.Parameters.Add(Text("owner", patch.CompletesRefreshOf));
                }

                AddContent(command, content, row.Id, _codec.SealCredential(row.Id, row.Name, row.Kind, row.Version + 1, content));
                command.Parameters.Add(Bigint("version", row.Version));
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await PruneAsync(connection, transaction, row.Id, ct).ConfigureAwait(false);
            var written = Decode((await ReadRowAsync(connection, transaction, name, forUpdate: false, ct).ConfigureAwait(false))!);
            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return new WriteResult(WriteOutcome.Written, written);
        }, idempotent: false, cancellationToken);
    }

    public Task<bool> RemoveAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);

        // One statement, so one transaction; the history goes with the row (ON DELETE CASCADE).
        return RunAsync(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand("DELETE FROM credential WHERE name = @name", connection);
            command.Parameters.Add(Text("name", name));
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
        }, idempotent: false, cancellationToken);
    }

    public Task<IReadOnlyList<CredentialVersion>> GetHistoryAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync<IReadOnlyList<CredentialVersion>>(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand(
                $"SELECT {StoredRow.SavedColumns}, {PostgresSchema.NowMs} FROM {StoredRow.SavedFrom} WHERE c.name = @name ORDER BY h.version DESC", connection);
            command.Parameters.Add(Text("name", name));
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var versions = new List<CredentialVersion>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                versions.Add(_codec.Version(ReadStoredRow(reader)));
            }

            return versions;
        }, idempotent: true, cancellationToken);
    }

    public Task<WriteResult> RestoreAsync(string name, long version, WriteCondition condition, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(condition);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            var row = await ReadRowAsync(connection, transaction, name, forUpdate: true, ct).ConfigureAwait(false);
            if (row is null)
            {
                return new WriteResult(WriteOutcome.NotFound, null);
            }

            if (!condition.IsSatisfiedBy(row.Version, row.RefreshTokenFingerprint))
            {
                return new WriteResult(WriteOutcome.ConditionFailed, Decode(row));
            }

            StoredRow? saved;
            await using (var select = new NpgsqlCommand(
                $"SELECT {StoredRow.SavedColumns}, {PostgresSchema.NowMs} FROM {StoredRow.SavedFrom} WHERE h.credential_id = @id AND h.version = @version", connection, transaction))
            {
                select.Parameters.Add(Text("id", row.Id));
                select.Parameters.Add(Bigint("version", version));
                await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                saved = await reader.ReadAsync(ct).ConfigureAwait(false) ? ReadStoredRow(reader) : null;
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

            await ArchiveAsync(connection, transaction, row, ct).ConfigureAwait(false);
            await using (var command = new NpgsqlCommand(
                """
                UPDATE credential SET version = version + 1, state = @state, reason_json = @reason, metadata_json = @metadata,
                  key_id = @key_id, secret_ct = @secret_ct, rt_fp = @rt_fp, at_fp = @at_fp, updated_at = @now, updated_by = @by, row_mac = @mac,
                  attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL, attempt_recovery_of = NULL,
                  failures = 0, backoff_until = NULL, last_error_json = NULL, last_error_mac = NULL
                WHERE id = @id AND version = @current
                """, connection, transaction))
            {
                var content = RowCodec.Content(saved, FingerprintOrNull(restored.Secrets.AccessToken));
                AddContent(command, content, row.Id, _codec.SealCredential(row.Id, row.Name, row.Kind, row.Version + 1, content));
                command.Parameters.Add(Bigint("current", row.Version));
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await PruneAsync(connection, transaction, row.Id, ct).ConfigureAwait(false);
            var written = Decode((await ReadRowAsync(connection, transaction, name, forUpdate: false, ct).ConfigureAwait(false))!);
            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return new WriteResult(WriteOutcome.Written, written);
        }, idempotent: false, cancellationToken);
    }

    public string Fingerprint(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _protector.Fingerprint(token);
    }

    public Task<bool> TryAcquireLeaseAsync(string name, string owner, string? observedOwner, long observedEpoch, TimeSpan duration, CancellationToken cancellationToken) =>
        CoordinateAsync(
            $"""
            UPDATE credential SET lease_owner = @owner, lease_until = {PostgresSchema.NowMs} + @duration, lease_epoch = lease_epoch + 1
            WHERE name = @name AND lease_owner IS NOT DISTINCT FROM @observed AND lease_epoch = @epoch
            """,
            [Text("name", name), Text("owner", owner), Bigint("duration", Milliseconds(duration)), Text("observed", observedOwner), Bigint("epoch", observedEpoch)],
            cancellationToken);

    public Task<bool> RenewLeaseAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken) =>
        CoordinateAsync(
            $"UPDATE credential SET lease_until = {PostgresSchema.NowMs} + @duration WHERE name = @name AND lease_owner = @owner",
            [Text("name", name), Text("owner", owner), Bigint("duration", Milliseconds(duration))],
            cancellationToken);

    public Task<bool> ReleaseLeaseAsync(string name, string owner, CancellationToken cancellationToken) =>
        CoordinateAsync(
            "UPDATE credential SET lease_owner = NULL, lease_until = NULL WHERE name = @name AND lease_owner = @owner",
            [Text("name", name), Text("owner", owner)],
            cancellationToken);

    public Task<bool> MarkAttemptAsync(string name, string owner, string attemptId, string? refreshTokenFingerprint, string? recoveryOf, CancellationToken cancellationToken) =>
        CoordinateAsync(
            $"""
            UPDATE credential SET attempt_id = @attempt, attempt_rt_fp = @fp, attempt_owner = @owner, attempt_sent_at = {PostgresSchema.NowMs}, attempt_recovery_of = @recovery
            WHERE name = @name AND lease_owner = @owner AND rt_fp IS NOT DISTINCT FROM @fp
            """,
            [Text("name", name), Text("owner", owner), Text("attempt", attemptId), Text("fp", refreshTokenFingerprint), Text("recovery", recoveryOf)],
            cancellationToken);

    /// <remarks>The backoff is kept on the database's clock: it ends as long after the database's "now" as
    /// <paramref name="backoffUntil"/> is after this process's.</remarks>
    public Task<bool> RecordRefreshFailureAsync(string name, string owner, StateReason error, DateTimeOffset backoffUntil, bool clearAttempt, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(error, StoreJsonContext.Default.StateReason);
        return CoordinateAsync(
            $"""
            UPDATE credential SET failures = failures + 1, backoff_until = {PostgresSchema.NowMs} + @backoff, last_error_json = @error, last_error_mac = @error_mac,
              {(clearAttempt ? "attempt_id = NULL, attempt_rt_fp = NULL, attempt_owner = NULL, attempt_sent_at = NULL, attempt_recovery_of = NULL," : string.Empty)}
              lease_owner = NULL, lease_until = NULL
            WHERE name = @name AND lease_owner = @owner
            """,
            [Text("name", name), Text("owner", owner), Bigint("backoff", Math.Max(0, Milliseconds(backoffUntil - _time.GetUtcNow()))),
                Text("error", json), Text("error_mac", _codec.SealDiagnostic(name, RowCodec.LastErrorColumn, json))],
            cancellationToken);
    }

    public Task<bool> RecordUpstreamFailureAsync(string name, UpstreamFailure? failure, CancellationToken cancellationToken)
    {
        var json = failure is null ? null : JsonSerializer.Serialize(failure, StoreJsonContext.Default.UpstreamFailure);
        return CoordinateAsync(
            "UPDATE credential SET upstream_failure_json = @failure, upstream_failure_mac = @mac WHERE name = @name",
            [Text("name", name), Text("failure", json), Text("mac", _codec.SealDiagnostic(name, RowCodec.UpstreamFailureColumn, json))],
            cancellationToken);
    }

    /// <summary>
    /// Whether the store's record that its rows are sealed (written when they were first sealed) is there and
    /// matches its own seal; false means someone removed or changed it (used by <c>doctor</c>).
    /// </summary>
    public bool RowsSealedMarkerIntact() => Run(connection =>
    {
        using var command = new NpgsqlCommand("SELECT value FROM store_meta WHERE name = @name", connection);
        command.Parameters.AddWithValue("name", RowCodec.RowsSealedMarkerName);
        return _codec.IsRowsSealedMarker(command.ExecuteScalar() as string);
    });

    /// <summary>Seals and opens a probe, proving the key works.</summary>
    public bool SelfTest()
    {
        var probe = RandomNumberGenerator.GetBytes(32);
        var sealedProbe = _protector.Seal(probe, "self-test");
        var ok = _protector.TryOpen(sealedProbe, "self-test", _protector.KeyId, out var opened, out _) && opened.AsSpan().SequenceEqual(probe);
        CryptographicOperations.ZeroMemory(opened);
        return ok;
    }

    public async ValueTask DisposeAsync()
    {
        await _dataSource.DisposeAsync().ConfigureAwait(false);
        _protector.Dispose();
    }

    public void Dispose()
    {
        _dataSource.Dispose();
        _protector.Dispose();
    }

    private static long Milliseconds(TimeSpan span) => (long)span.TotalMilliseconds;

    private static NpgsqlParameter Text(string name, string? value) => new(name, NpgsqlDbType.Text) { Value = (object?)value ?? DBNull.Value };

    private static NpgsqlParameter Bigint(string name, long? value) => new(name, NpgsqlDbType.Bigint) { Value = (object?)value ?? DBNull.Value };

    private static NpgsqlParameter Bytes(string name, byte[] value) => new(name, NpgsqlDbType.Bytea) { Value = value };

    private Task<bool> CoordinateAsync(string sql, NpgsqlParameter[] parameters, CancellationToken cancellationToken) =>
        RunAsync(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand(sql, connection);
            command.Parameters.AddRange(parameters);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
        }, idempotent: false, cancellationToken);

    private async Task<StoredRow?> ReadRowAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string name, bool forUpdate, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {StoredRow.Columns}, {PostgresSchema.NowMs} FROM credential WHERE name = @name{(forUpdate ? " FOR UPDATE" : string.Empty)}", connection, transaction);
        command.Parameters.Add(Text("name", name));
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        return await reader.ReadAsync(ct).ConfigureAwait(false) ? ReadStoredRow(reader) : null;
    }

    private async Task ArchiveAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, StoredRow row, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO credential_history (credential_id, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, written_at, archived_at, row_mac)
            VALUES (@id, @version, @state, @reason, @metadata, @key_id, @secret_ct, @rt_fp, @written, @now, @mac)
            ON CONFLICT (credential_id, version) DO UPDATE SET state = excluded.state, reason_json = excluded.reason_json,
              metadata_json = excluded.metadata_json, key_id = excluded.key_id, secret_ct = excluded.secret_ct, rt_fp = excluded.rt_fp,
              written_at = excluded.written_at, archived_at = excluded.archived_at, row_mac = excluded.row_mac
            """, connection, transaction);
        command.Parameters.Add(Text("id", row.Id));
        command.Parameters.Add(Bigint("version", row.Version));
        command.Parameters.Add(Text("state", row.State));
        command.Parameters.Add(Text("reason", row.ReasonJson));
        command.Parameters.Add(Text("metadata", row.MetadataJson));
        command.Parameters.Add(Text("key_id", row.KeyId));
        command.Parameters.Add(Bytes("secret_ct", row.SealedSecrets));
        command.Parameters.Add(Text("rt_fp", row.RefreshTokenFingerprint));
        command.Parameters.Add(Bigint("written", row.UpdatedAt));
        command.Parameters.Add(Bigint("now", _time.GetUtcNow().ToUnixTimeMilliseconds()));
        command.Parameters.Add(Text("mac", _codec.SealAsSaved(row)));
        await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private async Task PruneAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string id, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            """
            DELETE FROM credential_history WHERE credential_id = @id AND version NOT IN
              (SELECT version FROM credential_history WHERE credential_id = @id ORDER BY version DESC LIMIT @keep)
            """, connection, transaction);
        command.Parameters.Add(Text("id", id));
        command.Parameters.Add(Bigint("keep", HistoryDepth));
        await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The parameters of a content write: the content columns, who and when, the row's id and its new seal.</summary>
    private void AddContent(NpgsqlCommand command, PatchedContent content, string id, string seal)
    {
        command.Parameters.Add(Text("state", content.State));
        command.Parameters.Add(Text("reason", content.ReasonJson));
        command.Parameters.Add(Text("metadata", content.MetadataJson));
        command.Parameters.Add(Text("key_id", content.KeyId));
        command.Parameters.Add(Bytes("secret_ct", content.SealedSecrets));
        command.Parameters.Add(Text("rt_fp", content.RefreshTokenFingerprint));
        command.Parameters.Add(Text("at_fp", content.AccessTokenFingerprint));
        command.Parameters.Add(Bigint("now", _time.GetUtcNow().ToUnixTimeMilliseconds()));
        command.Parameters.Add(Text("by", _writer));
        command.Parameters.Add(Text("id", id));
        command.Parameters.Add(Text("mac", seal));
    }

    private string? FingerprintOrNull(string? token) => _codec.FingerprintOrNull(token);
}
