using System.Security.Cryptography;
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
        return Task.FromResult(Run<(ClientKey, string)?>(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText =
                """
                INSERT INTO client_key (name, key_id, secret_fp, credentials_json, created_at, expires_at)
                VALUES ($name, $id, $fp, $credentials, $created, $expires)
                ON CONFLICT (name) DO NOTHING
                """;
            command.Parameters.AddWithValue("$name", name);
            command.Parameters.AddWithValue("$id", keyId);
            command.Parameters.AddWithValue("$fp", _protector.Fingerprint(value));
            command.Parameters.AddWithValue("$credentials", RowCodec.EncodeNames(credentials));
            command.Parameters.AddWithValue("$created", now.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$expires", expiresAt is { } e ? e.ToUnixTimeMilliseconds() : DBNull.Value);
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
                keys.Add(RowCodec.ReadKey(reader));
            }

            return keys;
        }));
    }

    public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken) =>
        Coordinate("UPDATE client_key SET revoked_at = $now WHERE name = $name AND revoked_at IS NULL",
            [("$name", name), ("$now", _time.GetUtcNow().ToUnixTimeMilliseconds())], cancellationToken);

    public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken) =>
        Coordinate("DELETE FROM client_key WHERE name = $name", [("$name", name)], cancellationToken);

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
            command.CommandText = $"SELECT {RowCodec.KeyColumns}, secret_fp FROM client_key WHERE key_id = $id";
            command.Parameters.AddWithValue("$id", keyId);
            using var reader = command.ExecuteReader();
            if (!reader.Read())
            {
                return ClientKeyCheck.Unknown;
            }

            return RowCodec.CheckKey(reader, presentedFingerprint, _time.GetUtcNow());
        }));
    }
}
