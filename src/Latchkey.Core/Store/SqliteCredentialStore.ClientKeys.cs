using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Latchkey.Store;

/// <summary>Client keys in the same database as the credentials they give access to.</summary>
internal sealed partial class SqliteCredentialStore
{
    private const string KeyColumns = "name, key_id, credentials_json, created_at, expires_at, revoked_at, last_used_at";

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
            command.Parameters.AddWithValue("$credentials", JsonSerializer.Serialize(credentials.ToArray(), StoreJsonContext.Default.StringArray));
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
            command.CommandText = $"SELECT {KeyColumns} FROM client_key ORDER BY name";
            using var reader = command.ExecuteReader();
            var keys = new List<ClientKey>();
            while (reader.Read())
            {
                keys.Add(ReadKey(reader));
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
            command.CommandText = $"SELECT {KeyColumns}, secret_fp FROM client_key WHERE key_id = $id";
            command.Parameters.AddWithValue("$id", keyId);
            using var reader = command.ExecuteReader();
            if (!reader.Read())
            {
                return ClientKeyCheck.Unknown;
            }

            var key = ReadKey(reader);

            // Constant time: how much of the key matched must not show in how long the answer took.
            if (!CryptographicOperations.FixedTimeEquals(presentedFingerprint, Encoding.ASCII.GetBytes(reader.GetString(7))))
            {
                return ClientKeyCheck.Unknown;
            }

            var status = key.StateAt(_time.GetUtcNow()) switch
            {
                "revoked" => ClientKeyStatus.Revoked,
                "expired" => ClientKeyStatus.Expired,
                _ => ClientKeyStatus.Valid,
            };
            return new ClientKeyCheck(status, key);
        }));
    }

    private static ClientKey ReadKey(SqliteDataReader r) => new()
    {
        Name = r.GetString(0),
        KeyId = r.GetString(1),
        Credentials = DecodeNames(r.GetString(2)),
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)),
        ExpiresAt = r.IsDBNull(4) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)),
        RevokedAt = r.IsDBNull(5) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5)),
        LastUsedAt = r.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)),
    };

    private static string[] DecodeNames(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, StoreJsonContext.Default.StringArray) ?? [];
        }
        catch (JsonException)
        {
            return []; // a damaged list allows nothing, and 'keys list' shows the key with no credentials
        }
    }
}
