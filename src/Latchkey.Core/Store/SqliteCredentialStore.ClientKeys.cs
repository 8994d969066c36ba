using System.Data;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Latchkey.Store;

/// <summary>Client keys in the same database as the credentials they give access to.</summary>
internal sealed partial class SqliteCredentialStore
{
    public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(credentials);
        cancellationToken.ThrowIfCancellationRequested();
        var (value, keyId) = ClientKeyFormat.Generate();
        var now = _time.GetUtcNow();
        var key = new ClientKey { Name = name, KeyId = keyId, Credentials = [.. credentials], CreatedAt = now, ExpiresAt = expiresAt };
        var fingerprint = _protector.Fingerprint(value);
        var credentialsJson = RowCodec.EncodeNames(credentials);
        var seal = _codec.SealKey(name, keyId, fingerprint, credentialsJson, now.ToUnixTimeMilliseconds(), expiresAt?.ToUnixTimeMilliseconds(), null);
        return Task.FromResult(Run<(ClientKey, string)?>(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText =
                """
                INSERT INTO client_key (name, key_id, secret_fp, credentials_json, created_at, expires_at, row_mac)
                VALUES ($name, $id, $fp, $credentials, $created, $expires, $mac)
                ON CONFLICT (name) DO NOTHING
                """;
            command.Parameters.AddWithValue("$name", name);
            command.Parameters.AddWithValue("$id", keyId);
            command.Parameters.AddWithValue("$fp", fingerprint);
            command.Parameters.AddWithValue("$credentials", credentialsJson);
            command.Parameters.AddWithValue("$created", now.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$expires", expiresAt is { } e ? e.ToUnixTimeMilliseconds() : DBNull.Value);
            command.Parameters.AddWithValue("$mac", seal);
            return command.ExecuteNonQuery() == 1 ? (key, value) : null;
        }));
    }

    public Task<IReadOnlyList<ClientKey>> ListKeysAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run<IReadOnlyList<ClientKey>>(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {RowCodec.KeyColumns} FROM client_key ORDER BY name";
            using var reader = command.ExecuteReader();
            var keys = new List<ClientKey>();
            while (reader.Read())
            {
                keys.Add(_codec.ReadKey(reader));
            }

            return keys;
        }));
    }

    /// <remarks>
    /// One transaction: the row is read, its revocation time set and the row sealed again. A row that does not match
    /// its seal is revoked too, but keeps its broken seal, so it stays refused (as tampered) rather than being
    /// made genuine by the new seal.
    /// </remarks>
    public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var transaction = connection.BeginTransaction(IsolationLevel.Serializable, deferred: false);
            ClientKey key;
            string fingerprint, credentialsJson;
            string? seal;
            using (var select = connection.CreateCommand())
            {
                select.Transaction = transaction;
                select.CommandText = $"SELECT {RowCodec.KeyColumns}, credentials_json FROM client_key WHERE name = $name AND revoked_at IS NULL";
                select.Parameters.AddWithValue("$name", name);
                using var reader = select.ExecuteReader();
                if (!reader.Read())
                {
                    return false;
                }

                key = _codec.ReadKey(reader);
                fingerprint = reader.GetString(7);
                seal = reader.IsDBNull(8) ? null : reader.GetString(8);
                credentialsJson = reader.GetString(9);
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            using (var update = connection.CreateCommand())
            {
                update.Transaction = transaction;
                update.CommandText = "UPDATE client_key SET revoked_at = $now, row_mac = $mac WHERE name = $name";
                update.Parameters.AddWithValue("$name", name);
                update.Parameters.AddWithValue("$now", now);
                update.Parameters.AddWithValue("$mac", key.Tampered
                    ? (object?)seal ?? DBNull.Value
                    : _codec.SealKey(key.Name, key.KeyId, fingerprint, credentialsJson, key.CreatedAt.ToUnixTimeMilliseconds(), key.ExpiresAt?.ToUnixTimeMilliseconds(), now));
                update.ExecuteNonQuery();
            }

            transaction.Commit();
            _codec.RememberRevoked(key.KeyId);
            return true;
        }));
    }

    public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Run(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM client_key WHERE name = $name RETURNING key_id";
            command.Parameters.AddWithValue("$name", name);
            if (command.ExecuteScalar() is not string keyId)
            {
                return false;
            }

            _codec.RememberRevoked(keyId);
            return true;
        }));
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
        return Task.FromResult(Run(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT {RowCodec.KeyColumns} FROM client_key WHERE key_id = $id";
            command.Parameters.AddWithValue("$id", keyId);
            using var reader = command.ExecuteReader();
            if (!reader.Read())
            {
                return ClientKeyCheck.Unknown;
            }

            return _codec.CheckKey(reader, presentedFingerprint, _time.GetUtcNow());
        }));
    }
}
