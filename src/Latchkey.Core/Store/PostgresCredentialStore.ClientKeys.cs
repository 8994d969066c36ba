using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace Latchkey.Store;

/// <summary>Client keys in the same database as the credentials they give access to; only HMACs of them are stored.</summary>
internal sealed partial class PostgresCredentialStore
{
    public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(credentials);
        var (value, keyId) = ClientKeyFormat.Generate();
        var now = _time.GetUtcNow();
        var key = new ClientKey { Name = name, KeyId = keyId, Credentials = [.. credentials], CreatedAt = now, ExpiresAt = expiresAt };
        var fingerprint = _protector.Fingerprint(value);
        var credentialsJson = RowCodec.EncodeNames(credentials);
        var seal = _codec.SealKey(name, keyId, fingerprint, credentialsJson, now.ToUnixTimeMilliseconds(), expiresAt?.ToUnixTimeMilliseconds(), null);
        return RunAsync<(ClientKey, string)?>(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand(
                """
                INSERT INTO client_key (name, key_id, secret_fp, credentials_json, created_at, expires_at, row_mac)
                VALUES (@name, @id, @fp, @credentials, @created, @expires, @mac)
                ON CONFLICT (name) DO NOTHING
                """, connection);
            command.Parameters.Add(Text("name", name));
            command.Parameters.Add(Text("id", keyId));
            command.Parameters.Add(Text("fp", fingerprint));
            command.Parameters.Add(Text("credentials", credentialsJson));
            command.Parameters.Add(Bigint("created", now.ToUnixTimeMilliseconds()));
            command.Parameters.Add(Bigint("expires", expiresAt?.ToUnixTimeMilliseconds()));
            command.Parameters.Add(Text("mac", seal));
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1 ? (key, value) : null;
        }, idempotent: false, cancellationToken);
    }

    public Task<IReadOnlyList<ClientKey>> ListKeysAsync(CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<ClientKey>>(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand($"SELECT {RowCodec.KeyColumns} FROM client_key ORDER BY name COLLATE \"C\"", connection);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var keys = new List<ClientKey>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                keys.Add(_codec.ReadKey(reader));
            }

            return keys;
        }, idempotent: true, cancellationToken);

    /// <remarks>
    /// One transaction: the row is locked and read, its revocation time set and the row sealed again. A row that does
    /// not match its seal is revoked too, but keeps its broken seal, so it stays refused (as tampered) rather than
    /// being made genuine by the new seal.
    /// </remarks>
    public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            ClientKey key;
            string fingerprint, credentialsJson;
            string? seal;
            await using (var select = new NpgsqlCommand($"SELECT {RowCodec.KeyColumns}, credentials_json FROM client_key WHERE name = @name AND revoked_at IS NULL FOR UPDATE", connection, transaction))
            {
                select.Parameters.Add(Text("name", name));
                await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    return false;
                }

                key = _codec.ReadKey(reader);
                fingerprint = reader.GetString(7);
                seal = reader.IsDBNull(8) ? null : reader.GetString(8);
                credentialsJson = reader.GetString(9);
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            await using (var update = new NpgsqlCommand("UPDATE client_key SET revoked_at = @now, row_mac = @mac WHERE name = @name", connection, transaction))
            {
                update.Parameters.Add(Text("name", name));
                update.Parameters.Add(Bigint("now", now));
                update.Parameters.Add(Text("mac", key.Tampered
                    ? seal
                    : _codec.SealKey(key.Name, key.KeyId, fingerprint, credentialsJson, key.CreatedAt.ToUnixTimeMilliseconds(), key.ExpiresAt?.ToUnixTimeMilliseconds(), now)));
                await update.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await transaction.CommitAsync(ct).ConfigureAwait(false);
            _codec.RememberRevoked(key.KeyId);
            return true;
        }, idempotent: false, cancellationToken);
    }

    public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return RunAsync(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand("DELETE FROM client_key WHERE name = @name RETURNING key_id", connection);
            command.Parameters.Add(Text("name", name));
            if (await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is not string keyId)
            {
                return false;
            }

            _codec.RememberRevoked(keyId);
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

        var presentedFingerprint = Encoding.ASCII.GetBytes(_protector.Fingerprint(presented));
        return RunAsync(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand($"SELECT {RowCodec.KeyColumns} FROM client_key WHERE key_id = @id", connection);
            command.Parameters.Add(Text("id", keyId));
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                return ClientKeyCheck.Unknown;
            }

            return _codec.CheckKey(reader, presentedFingerprint, _time.GetUtcNow());
        }, idempotent: true, cancellationToken);
    }
}
