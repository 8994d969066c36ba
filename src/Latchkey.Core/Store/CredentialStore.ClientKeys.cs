using System.Data.Common;
using System.Text;

namespace Latchkey.Store;

/// <summary>Client keys, in the same database as the credentials they give access to; only HMACs of them are stored.</summary>
internal abstract partial class CredentialStore
{
    public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, CancellationToken cancellationToken) =>
        CreateKeyAsync(name, credentials, expiresAt, null, cancellationToken);

    public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, string? madeFor, CancellationToken cancellationToken) =>
        CreateKeyAsync(name, credentials, expiresAt, madeFor, null, cancellationToken);

    public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, string? madeFor, ClientKeyLimits? limits, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(credentials);
        limits = limits?.OrNull();
        var (value, keyId) = ClientKeyFormat.Generate();
        var now = Time.GetUtcNow();
        var key = new ClientKey { Name = name, KeyId = keyId, Credentials = [.. credentials], CreatedAt = now, ExpiresAt = expiresAt, MadeFor = madeFor, Limits = limits };
        var fingerprint = Protector.Fingerprint(value);
        var credentialsJson = RowCodec.EncodeNames(credentials);
        var seal = Codec.SealKey(name, keyId, fingerprint, credentialsJson, now.ToUnixTimeMilliseconds(), expiresAt?.ToUnixTimeMilliseconds(), null, madeFor, limits);
        return RunAsync<(ClientKey, string)?>(async (connection, ct) =>
        {
            await using var command = BindLimits(connection.Command(null,
                """
                INSERT INTO client_key (name, key_id, secret_fp, credentials_json, created_at, expires_at, row_mac, made_for, rate_limit, rate_window_s, tokens_per_day, concurrent_limit)
                VALUES (@name, @id, @fp, @credentials, @created, @expires, @mac, @madeFor, @rate, @window, @tokens, @concurrent)
                ON CONFLICT (name) DO NOTHING
                """)
                .Bind("@name", name).Bind("@id", keyId).Bind("@fp", fingerprint).Bind("@credentials", credentialsJson)
                .Bind("@created", now.ToUnixTimeMilliseconds()).Bind("@expires", expiresAt?.ToUnixTimeMilliseconds()).Bind("@mac", seal).Bind("@madeFor", madeFor), limits);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1 ? (key, value) : null;
        }, idempotent: false, cancellationToken);
    }

    /// <remarks>
    /// One transaction, like <see cref="RevokeKeyAsync"/>: the row is read under the write lock, the change applied to
    /// the limits it holds, and the row sealed again. A row that does not match its seal is left as it is.
    /// </remarks>
    public Task<(KeyLimitsOutcome Outcome, ClientKey? Key)> SetKeyLimitsAsync(string name, Func<ClientKeyLimits?, ClientKeyLimits?> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(change);
        return RunAsync<(KeyLimitsOutcome, ClientKey?)>(async (connection, ct) =>
        {
            await using var transaction = await BeginWriteAsync(connection, ct).ConfigureAwait(false);
            ClientKey key;
            string fingerprint, credentialsJson;
            await using (var select = connection.Command(transaction,
                $"SELECT {RowCodec.KeyColumns}, credentials_json FROM client_key WHERE name = @name AND revoked_at IS NULL{LockRows}").Bind("@name", name))
            {
                await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    return (KeyLimitsOutcome.NotFound, null);
                }

                key = Codec.ReadKey(reader);
                fingerprint = reader.GetString(7);
                credentialsJson = reader.GetString(RowCodec.KeyColumnCount);
            }

            if (key.Tampered)
            {
                return (KeyLimitsOutcome.Tampered, key);
            }

            var limits = change(key.Limits)?.OrNull();
            var seal = Codec.SealKey(key.Name, key.KeyId, fingerprint, credentialsJson, key.CreatedAt.ToUnixTimeMilliseconds(), key.ExpiresAt?.ToUnixTimeMilliseconds(), null, key.MadeFor, limits);
            await using (var update = BindLimits(connection.Command(transaction,
                "UPDATE client_key SET rate_limit = @rate, rate_window_s = @window, tokens_per_day = @tokens, concurrent_limit = @concurrent, row_mac = @mac WHERE name = @name"), limits))
            {
                await update.Bind("@name", name).Bind("@mac", seal).ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return (KeyLimitsOutcome.Updated, key with { Limits = limits });
        }, idempotent: false, cancellationToken);
    }

    private static DbCommand BindLimits(DbCommand command, ClientKeyLimits? limits)
    {
        var (rate, window, tokens, concurrent) = RowCodec.LimitColumns(limits);
        return command.Bind("@rate", rate).Bind("@window", window).Bind("@tokens", tokens).Bind("@concurrent", concurrent);
    }

    public Task<IReadOnlyList<ClientKey>> ListKeysAsync(CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<ClientKey>>(async (connection, ct) =>
        {
            await using var command = connection.Command(null, $"SELECT {RowCodec.KeyColumns} FROM client_key ORDER BY {NameOrder}");
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var keys = new List<ClientKey>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                keys.Add(Codec.ReadKey(reader));
            }

            return keys;
        }, idempotent: true, cancellationToken);

    /// <remarks>
    /// One transaction: the row is read under the write lock, its revocation time set and the row sealed again. A row
    /// that does not match its seal is revoked too, but keeps its broken seal, so it stays refused (as tampered)
    /// rather than being made genuine by the new seal.
    /// </remarks>
    public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await BeginWriteAsync(connection, ct).ConfigureAwait(false);
            ClientKey key;
            string fingerprint, credentialsJson;
            string? seal;
            await using (var select = connection.Command(transaction,
                $"SELECT {RowCodec.KeyColumns}, credentials_json FROM client_key WHERE name = @name AND revoked_at IS NULL{LockRows}").Bind("@name", name))
            {
                await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    return false;
                }

                key = Codec.ReadKey(reader);
                fingerprint = reader.GetString(7);
                seal = reader.IsDBNull(8) ? null : reader.GetString(8);
                credentialsJson = reader.GetString(RowCodec.KeyColumnCount);
            }

            var now = NowMs();
            await using (var update = connection.Command(transaction, "UPDATE client_key SET revoked_at = @now, row_mac = @mac WHERE name = @name"))
            {
                await update.Bind("@name", name).Bind("@now", now)
                    .Bind("@mac", key.Tampered
                        ? seal
                        : Codec.SealKey(key.Name, key.KeyId, fingerprint, credentialsJson, key.CreatedAt.ToUnixTimeMilliseconds(), key.ExpiresAt?.ToUnixTimeMilliseconds(), now, key.MadeFor, key.Limits))
                    .ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await transaction.CommitAsync(ct).ConfigureAwait(false);
            Codec.RememberRevoked(key.KeyId);
            return true;
        }, idempotent: false, cancellationToken);
    }

    public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync(async (connection, ct) =>
        {
            await using var command = connection.Command(null, "DELETE FROM client_key WHERE name = @name RETURNING key_id").Bind("@name", name);
            if (await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is not string keyId)
            {
                return false;
            }

            Codec.RememberRevoked(keyId);
            return true;
        }, idempotent: false, cancellationToken);
    }

    public Task<ClientKeyCheck> VerifyKeyAsync(string presented, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(presented);
        cancellationToken.ThrowIfCancellationRequested();
        if (ClientKeyFormat.TryGetId(presented) is not { } keyId)
        {
            return Task.FromResult(ClientKeyCheck.Malformed);
        }

        var presentedFingerprint = Encoding.ASCII.GetBytes(Protector.Fingerprint(presented));
        return RunAsync(async (connection, ct) =>
        {
            await using var command = connection.Command(null, $"SELECT {RowCodec.KeyColumns} FROM client_key WHERE key_id = @id").Bind("@id", keyId);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            return await reader.ReadAsync(ct).ConfigureAwait(false)
                ? Codec.CheckKey(reader, presentedFingerprint, Time.GetUtcNow())
                : ClientKeyCheck.Unknown;
        }, idempotent: true, cancellationToken);
    }
}
