using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Latchkey.Store;

/// <summary>
/// What both backends do between a stored row and a record: decoding (with quarantine for whatever does not
/// decode), sealing secrets, fingerprints, client-key rows, and the text forms of kinds and states.
/// </summary>
/// <remarks>Stateless apart from the protector; safe to share between threads.</remarks>
internal sealed class RowCodec(SecretProtector protector)
{
    /// <summary>The client-key columns <see cref="ReadKey"/> reads, in its order.</summary>
    public const string KeyColumns = "name, key_id, credentials_json, created_at, expires_at, revoked_at, last_used_at";

    /// <summary>
    /// Turns a stored row into a record. Never throws for bad content: a row that does not decode becomes a
    /// quarantined record whose reason says what failed, and its bytes stay as they are.
    /// </summary>
    public CredentialRecord Decode(StoredRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var kind = ParseKind(row.Kind);
        var state = ParseState(row.State);
        CredentialMetadata? metadata = null;
        StateReason? reason = null;
        string? failure = null;
        var code = "row_corrupt";
        try
        {
            metadata = JsonSerializer.Deserialize(row.MetadataJson, StoreJsonContext.Default.CredentialMetadata);
            if (row.ReasonJson is not null)
            {
                reason = JsonSerializer.Deserialize(row.ReasonJson, StoreJsonContext.Default.StateReason);
            }
        }
        catch (JsonException)
        {
            failure = "its metadata is not valid JSON";
        }

        if (kind is null || state is null || metadata is null)
        {
            failure ??= kind is null ? $"its kind '{row.Kind}' is unknown" : state is null ? $"its state '{row.State}' is unknown" : "its metadata is empty";
        }

        var secrets = CredentialSecrets.Empty;
        if (failure is null)
        {
            if (protector.TryOpen(row.SealedSecrets, row.Id, row.KeyId, out var plaintext, out var openFailure))
            {
                try
                {
                    secrets = JsonSerializer.Deserialize(plaintext, StoreJsonContext.Default.CredentialSecrets) ?? CredentialSecrets.Empty;
                }
                catch (JsonException)
                {
                    failure = "its decrypted secret is not valid JSON";
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(plaintext);
                }
            }
            else
            {
                code = "decrypt_failed";
                failure = openFailure;
            }
        }

        var record = new CredentialRecord
        {
            Id = row.Id,
            Name = row.Name,
            Kind = kind ?? CredentialKind.ApiKey,
            Version = row.Version,
            State = state ?? CredentialState.Quarantined,
            Reason = reason,
            Metadata = metadata ?? new CredentialMetadata(),
            Secrets = secrets,
            RefreshTokenFingerprint = row.RefreshTokenFingerprint,
            AccessTokenFingerprint = row.AccessTokenFingerprint,
            Coordination = row.Coordination,
            LastUpstreamFailure = row.UpstreamFailure,
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAt),
            UpdatedAt = DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAt),
        };

        if (failure is null)
        {
            return record;
        }

        return record with
        {
            State = CredentialState.Quarantined,
            Secrets = CredentialSecrets.Empty,
            Reason = new StateReason(code,
                $"The stored record '{row.Name}' (version {row.Version}) cannot be read: {failure}. Its bytes are kept unchanged.",
                $"latchkey history {row.Name}, then latchkey restore {row.Name} --version N; or latchkey remove {row.Name} and add it again",
                DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAt)),
        };
    }

    /// <summary>Seals <paramref name="secrets"/> bound to the record id; the plaintext is wiped before returning.</summary>
    public byte[] SealSecrets(CredentialSecrets secrets, string id)
    {
        var plaintext = JsonSerializer.SerializeToUtf8Bytes(secrets, StoreJsonContext.Default.CredentialSecrets);
        try
        {
            return protector.Seal(plaintext, id);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>
    /// The content columns after applying <paramref name="patch"/> to <paramref name="current"/> (decoded from
    /// <paramref name="row"/>): secrets are re-sealed, and their fingerprints recomputed, only when the patch touches them.
    /// </summary>
    public PatchedContent Apply(StoredRow row, CredentialRecord current, CredentialPatch patch)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(patch);
        var metadata = patch.ApplyTo(current.Metadata);
        var state = patch.State ?? current.State;
        var reason = state == CredentialState.Ok ? null : patch.Reason ?? current.Reason;
        var content = new PatchedContent(
            StateText(state),
            reason is null ? null : JsonSerializer.Serialize(reason, StoreJsonContext.Default.StateReason),
            JsonSerializer.Serialize(metadata, StoreJsonContext.Default.CredentialMetadata),
            row.KeyId, row.SealedSecrets, row.RefreshTokenFingerprint, row.AccessTokenFingerprint);
        if (!patch.TouchesSecrets)
        {
            return content;
        }

        var secrets = patch.ApplyTo(current.Secrets);
        return content with
        {
            KeyId = protector.KeyId,
            SealedSecrets = SealSecrets(secrets, row.Id),
            RefreshTokenFingerprint = FingerprintOrNull(secrets.RefreshToken),
            AccessTokenFingerprint = FingerprintOrNull(secrets.AccessToken),
        };
    }

    /// <summary>A saved row's content as it is written back (a restore), with the access-token fingerprint recomputed.</summary>
    public static PatchedContent Content(StoredRow saved, string? accessTokenFingerprint) =>
        new(saved.State, saved.ReasonJson, saved.MetadataJson, saved.KeyId, saved.SealedSecrets, saved.RefreshTokenFingerprint, accessTokenFingerprint);

    /// <summary>Whether a history entry's sealed bytes still open with the current key (the plaintext is wiped).</summary>
    public bool CanOpen(byte[] sealedSecrets, string id, string keyId)
    {
        var readable = protector.TryOpen(sealedSecrets, id, keyId, out var plaintext, out _);
        CryptographicOperations.ZeroMemory(plaintext);
        return readable;
    }

    public string? FingerprintOrNull(string? token) => string.IsNullOrEmpty(token) ? null : protector.Fingerprint(token);

    /// <summary>
    /// Checks a presented key against the row read with <see cref="KeyColumns"/> plus <c>secret_fp</c> (ordinal 7):
    /// constant time, so how much of the key matched does not show in how long the answer took.
    /// </summary>
    public static ClientKeyCheck CheckKey(DbDataReader reader, byte[] presentedFingerprint, DateTimeOffset now)
    {
        var key = ReadKey(reader);
        if (!CryptographicOperations.FixedTimeEquals(presentedFingerprint, Encoding.ASCII.GetBytes(reader.GetString(7))))
        {
            return ClientKeyCheck.Unknown;
        }

        var status = key.StateAt(now) switch
        {
            "revoked" => ClientKeyStatus.Revoked,
            "expired" => ClientKeyStatus.Expired,
            _ => ClientKeyStatus.Valid,
        };
        return new ClientKeyCheck(status, key);
    }

    /// <summary>Reads a client key selected with <see cref="KeyColumns"/>.</summary>
    public static ClientKey ReadKey(DbDataReader r) => new()
    {
        Name = r.GetString(0),
        KeyId = r.GetString(1),
        Credentials = DecodeNames(r.GetString(2)),
        CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)),
        ExpiresAt = r.IsDBNull(4) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)),
        RevokedAt = r.IsDBNull(5) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5)),
        LastUsedAt = r.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)),
    };

    public static string EncodeNames(IReadOnlyList<string> names) => JsonSerializer.Serialize(names.ToArray(), StoreJsonContext.Default.StringArray);

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

    public static string KindText(CredentialKind kind) => kind switch
    {
        CredentialKind.ApiKey => "api-key",
        CredentialKind.OAuth => "oauth",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static CredentialKind? ParseKind(string text) => text switch
    {
        "api-key" => CredentialKind.ApiKey,
        "oauth" => CredentialKind.OAuth,
        _ => null,
    };

    public static string StateText(CredentialState state) => state switch
    {
        CredentialState.Ok => "ok",
        CredentialState.NeedsAuth => "needs-auth",
        CredentialState.Quarantined => "quarantined",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    public static CredentialState? ParseState(string text) => text switch
    {
        "ok" => CredentialState.Ok,
        "needs-auth" => CredentialState.NeedsAuth,
        "quarantined" => CredentialState.Quarantined,
        _ => null,
    };
}

/// <summary>A credential row's content columns, ready to write.</summary>
internal sealed record PatchedContent(
    string State, string? ReasonJson, string MetadataJson, string KeyId, byte[] SealedSecrets,
    string? RefreshTokenFingerprint, string? AccessTokenFingerprint);
