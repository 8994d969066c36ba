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
        return RunAsync<(ClientKey, string)?>(async (connection, ct) =>
        {
            await using var command = new NpgsqlCommand(
                """
                INSERT INTO client_key (name, key_id, secret_fp, credentials_json, created_at, expires_at)
                VALUES (@name, @id, @fp, @credentials, @created, @expires)
                ON CONFLICT (name) DO NOTHING
                """, connection);
            command.Parameters.Add(Text("name", name));
            command.Parameters.Add(Text("id", keyId));
            command.Parameters.Add(Text("fp", fingerprint));
            command.Parameters.Add(Text("credentials", RowCodec.EncodeNames(credentials)));
            command.Parameters.Add(Bigint("created", now.ToUnixTimeMilliseconds()));
            command.Parameters.Add(Bigint("expires", expiresAt?.ToUnixTimeMilliseconds()));
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
                keys.Add(RowCodec.ReadKey(reader));
            }

            return keys;
        }, idempotent: true, cancellationToken);

    public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return CoordinateAsync("UPDATE client_key SET revoked_at = @now WHERE name = @name AND revoked_at IS NULL",
            [Text("name", name), Bigint("now", _time.GetUtcNow().ToUnixTimeMilliseconds())], cancellationToken);
    }

    public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        return CoordinateAsync("DELETE FROM client_key WHERE name = @name", [Text("name", name)], cancellationToken);
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
            await using var command = new NpgsqlCommand($"SELECT {RowCodec.KeyColumns}, secret_fp FROM client_key WHERE key_id = @id", connection);
            command.Parameters.Add(Text("id", keyId));
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                return ClientKeyCheck.Unknown;
            }

            return RowCodec.CheckKey(reader, presentedFingerprint, _time.GetUtcNow());
        }, idempotent: true, cancellationToken);
    }
}
