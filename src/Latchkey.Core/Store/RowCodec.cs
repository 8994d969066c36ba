using System.Collections.Concurrent;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Latchkey.Store;

/// <summary>
/// What both backends do between a stored row and a record: decoding (with quarantine for whatever does not
/// decode or does not match its seal), sealing secrets and rows, fingerprints, client-key rows, and the text forms
/// of kinds and states. Every row either backend reads passes through here, so the seal is checked in one place.
/// </summary>
/// <remarks>
/// Safe to share between threads. Its only state besides the protector is the set of client keys it has seen
/// revoked (see <see cref="RememberRevoked"/>).
/// </remarks>
internal sealed partial class RowCodec(SecretProtector protector)
{
    /// <summary>The client-key columns <see cref="ReadKey"/> reads, in its order.</summary>
    public const string KeyColumns = "name, key_id, credentials_json, created_at, expires_at, revoked_at, last_used_at, secret_fp, row_mac, made_for, rate_limit, rate_window_s, tokens_per_day, concurrent_limit";

    /// <summary>The ordinal after <see cref="KeyColumns"/>: where a statement that selects more columns finds them.</summary>
    public const int KeyColumnCount = 14;

    /// <summary>The reason code of a row whose fields do not match their seal.</summary>
    public const string TamperedCode = "tampered";

    /// <summary>
    /// The ids of client keys this instance has seen revoked (or revoked or deleted itself). Revocation is final, so
    /// a later read of the same key as not revoked is a replay of its earlier row, refused as tampered. Lives as long
    /// as the store instance (a gateway's lifetime); see docs/store.md for what it cannot catch.
    /// </summary>
    private readonly ConcurrentDictionary<string, byte> _revokedKeyIds = new(StringComparer.Ordinal);

    /// <summary>
    /// Turns a stored row into a record. Never throws for bad content: a row that does not decode, does not match
    /// its seal, or does not decrypt becomes a quarantined record whose reason says what failed, with no secrets
    /// and (unless its seal verified) none of its metadata; its bytes stay as they are.
    /// </summary>
    public CredentialRecord Decode(StoredRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return DecodeCore(row, VerifiesAsCurrent(row), saved: false);
    }

    /// <summary>Decodes a saved version read with <see cref="StoredRow.SavedColumns"/>, checking its own seal.</summary>
    public CredentialRecord DecodeSaved(StoredRow saved)
    {
        ArgumentNullException.ThrowIfNull(saved);
        return DecodeCore(saved, VerifiesAsSaved(saved), saved: true);
    }

    /// <summary>A saved version (read with <see cref="StoredRow.SavedColumns"/>) as <c>history</c> lists it.</summary>
    public CredentialVersion Version(StoredRow saved)
    {
        ArgumentNullException.ThrowIfNull(saved);
        var keyMatches = string.Equals(saved.KeyId, protector.KeyId, StringComparison.Ordinal);
        var sealedOk = VerifiesAsSaved(saved);
        return new CredentialVersion(
            saved.Version,
            ParseState(saved.State) ?? CredentialState.Quarantined,
            DateTimeOffset.FromUnixTimeMilliseconds(saved.UpdatedAt),
            sealedOk && CanOpen(saved.SealedSecrets, saved.Id, saved.KeyId),
            saved.RefreshTokenFingerprint,
            Tampered: keyMatches && !sealedOk);
    }

    private CredentialRecord DecodeCore(StoredRow row, bool sealOk, bool saved)
    {
        var kind = ParseKind(row.Kind);
        var state = ParseState(row.State);
        CredentialMetadata? metadata = null;
        StateReason? reason = null;
        string? failure = null;
        string? fix = null;
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

        // The ciphertext is opened before the seal is checked only to tell damage to the sealed secret itself
        // (decrypt_failed, as before seals existed) from any other change (tampered); a row that fails either is
        // quarantined, and its plaintext is wiped without being used.
        var secrets = CredentialSecrets.Empty;
        if (failure is null && !string.Equals(row.KeyId, protector.KeyId, StringComparison.Ordinal))
        {
            code = "decrypt_failed";
            protector.TryOpen(row.SealedSecrets, row.Id, row.KeyId, out _, out var keyFailure);
            failure = keyFailure;
        }
        else if (failure is null)
        {
            if (!protector.TryOpen(row.SealedSecrets, row.Id, row.KeyId, out var plaintext, out var openFailure))
            {
                code = "decrypt_failed";
                failure = openFailure;
            }
            else
            {
                try
                {
                    if (!sealOk)
                    {
                        code = TamperedCode;
                        failure = "its fields do not match the seal this install's master key put on them, so it was changed outside Latchkey " +
                            "(by someone who can write the database, or by copying rows in from elsewhere); none of it is trusted and its secret is sent nowhere";
                        fix = saved
                            ? $"latchkey history {row.Name} shows which versions can still be restored; or latchkey remove {row.Name} and add it again. Then find out who can write the database."
                            : $"latchkey history {row.Name}, then latchkey restore {row.Name} --version N (one marked restorable); or latchkey remove {row.Name} and add it again. Then find out who can write the database.";
                    }
                    else
                    {
                        secrets = JsonSerializer.Deserialize(plaintext, StoreJsonContext.Default.CredentialSecrets) ?? CredentialSecrets.Empty;
                    }
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
        }

        // Diagnostics are shown to people and agents: one that does not match its own seal is dropped, not shown.
        var coordination = row.Coordination.LastError is not null && !VerifiesDiagnostic(row.Name, LastErrorColumn, row.LastErrorJson, row.LastErrorSeal)
            ? row.Coordination with { LastError = null }
            : row.Coordination;
        var upstreamFailure = row.UpstreamFailure is not null && VerifiesDiagnostic(row.Name, UpstreamFailureColumn, row.UpstreamFailureJson, row.UpstreamFailureSeal)
            ? row.UpstreamFailure
            : null;

        var record = new CredentialRecord
        {
            Id = row.Id,
            Name = row.Name,
            Kind = kind ?? CredentialKind.ApiKey,
            Version = row.Version,
            State = state ?? CredentialState.Quarantined,
            Reason = reason,
            Metadata = (sealOk ? metadata : null) ?? new CredentialMetadata(),
            Secrets = secrets,
            RefreshTokenFingerprint = row.RefreshTokenFingerprint,
            AccessTokenFingerprint = row.AccessTokenFingerprint,
            Coordination = coordination,
            LastUpstreamFailure = upstreamFailure,
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
                fix ?? $"latchkey history {row.Name}, then latchkey restore {row.Name} --version N; or latchkey remove {row.Name} and add it again",
                DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAt)),
        };
    }

    /// <summary>The column that holds the last refresh error (its seal is in <c>last_error_mac</c>).</summary>
    public const string LastErrorColumn = "last_error_json";

    /// <summary>The column that holds the last upstream failure (its seal is in <c>upstream_failure_mac</c>).</summary>
    public const string UpstreamFailureColumn = "upstream_failure_json";

    /// <summary>The seal of a diagnostic <paramref name="json"/> written to <paramref name="column"/> of the record <paramref name="name"/>; null for null.</summary>
    public string? SealDiagnostic(string name, string column, string? json) =>
        json is null ? null : protector.SealRow(RowSeal.Diagnostic(name, column, json));

    private bool VerifiesDiagnostic(string name, string column, string? json, string? seal) =>
        json is not null && protector.VerifyRow(RowSeal.Diagnostic(name, column, json), seal);

    /// <summary>The content columns of a new record, its secrets sealed for <paramref name="id"/>.</summary>
    public PatchedContent NewContent(NewCredential credential, string id)
    {
        ArgumentNullException.ThrowIfNull(credential);
        return new PatchedContent(
            StateText(CredentialState.Ok), null,
            JsonSerializer.Serialize(credential.Metadata, StoreJsonContext.Default.CredentialMetadata),
            protector.KeyId, SealSecrets(credential.Secrets, id),
            FingerprintOrNull(credential.Secrets.RefreshToken), FingerprintOrNull(credential.Secrets.AccessToken));
    }

    /// <summary>The seal of a credential row that will hold <paramref name="content"/> at <paramref name="version"/>.</summary>
    public string SealCredential(string id, string name, string kind, long version, PatchedContent content)
    {
        ArgumentNullException.ThrowIfNull(content);
        return protector.SealRow(RowSeal.Credential(id, name, kind, version, content.State, content.ReasonJson, content.MetadataJson,
            content.KeyId, content.SealedSecrets, content.RefreshTokenFingerprint, content.AccessTokenFingerprint));
    }

    /// <summary>
    /// The seal <paramref name="current"/> gets when it is archived as a saved version; null when the row does not
    /// match its own seal, so that a changed row archived by a restore can never be restored in its turn.
    /// </summary>
    public string? SealAsSaved(StoredRow current)
    {
        ArgumentNullException.ThrowIfNull(current);
        return VerifiesAsCurrent(current) ? SealSaved(current) : null;
    }

    private bool VerifiesAsCurrent(StoredRow r) =>
        protector.VerifyRow(RowSeal.Credential(r.Id, r.Name, r.Kind, r.Version, r.State, r.ReasonJson, r.MetadataJson, r.KeyId, r.SealedSecrets, r.RefreshTokenFingerprint, r.AccessTokenFingerprint), r.Seal);

    private bool VerifiesAsSaved(StoredRow s) =>
        protector.VerifyRow(RowSeal.History(s.Id, s.Name, s.Kind, s.Version, s.State, s.ReasonJson, s.MetadataJson, s.KeyId, s.SealedSecrets, s.RefreshTokenFingerprint, s.UpdatedAt), s.Seal);

    private string SealCurrent(StoredRow r) =>
        protector.SealRow(RowSeal.Credential(r.Id, r.Name, r.Kind, r.Version, r.State, r.ReasonJson, r.MetadataJson, r.KeyId, r.SealedSecrets, r.RefreshTokenFingerprint, r.AccessTokenFingerprint));

    private string SealSaved(StoredRow s) =>
        protector.SealRow(RowSeal.History(s.Id, s.Name, s.Kind, s.Version, s.State, s.ReasonJson, s.MetadataJson, s.KeyId, s.SealedSecrets, s.RefreshTokenFingerprint, s.UpdatedAt));

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
    /// Checks a presented key against the row read with <see cref="KeyColumns"/> (<c>secret_fp</c> at ordinal 7):
    /// constant time, so how much of the key matched does not show in how long the answer took. A row that does
    /// not match its seal is <see cref="ClientKeyStatus.Tampered"/>, whatever it says.
    /// </summary>
    public ClientKeyCheck CheckKey(DbDataReader reader, byte[] presentedFingerprint, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var key = ReadKey(reader);
        if (!CryptographicOperations.FixedTimeEquals(presentedFingerprint, Encoding.ASCII.GetBytes(reader.GetString(7))))
        {
            return ClientKeyCheck.Unknown;
        }

        var status = key.StateAt(now) switch
        {
            ClientKey.TamperedState => ClientKeyStatus.Tampered,
            "revoked" => ClientKeyStatus.Revoked,
            "expired" => ClientKeyStatus.Expired,
            _ => ClientKeyStatus.Valid,
        };
        return new ClientKeyCheck(status, key);
    }

    /// <summary>
    /// Reads a client key selected with <see cref="KeyColumns"/> and checks its seal. A key that does not match its
    /// seal, or that this instance saw revoked and now reads as not revoked, comes back
    /// <see cref="ClientKey.Tampered"/>, allowing nothing.
    /// </summary>
    public ClientKey ReadKey(DbDataReader r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var name = r.GetString(0);
        var keyId = r.GetString(1);
        var credentialsJson = r.GetString(2);
        var createdAt = r.GetInt64(3);
        long? expiresAt = r.IsDBNull(4) ? null : r.GetInt64(4);
        long? revokedAt = r.IsDBNull(5) ? null : r.GetInt64(5);
        var madeFor = r.IsDBNull(9) ? null : r.GetString(9);
        var (limits, limitsOk) = ReadLimits(r, 10);
        var sealOk = limitsOk
            && protector.VerifyRow(RowSeal.ClientKey(name, keyId, r.GetString(7), credentialsJson, createdAt, expiresAt, revokedAt, madeFor, limits), r.IsDBNull(8) ? null : r.GetString(8));
        if (sealOk && revokedAt is not null)
        {
            RememberRevoked(keyId);
        }

        var tampered = !sealOk || (revokedAt is null && _revokedKeyIds.ContainsKey(keyId));
        return new ClientKey
        {
            Name = name,
            KeyId = keyId,
            Credentials = tampered ? [] : DecodeNames(credentialsJson),
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(createdAt),
            ExpiresAt = expiresAt is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null,
            RevokedAt = revokedAt is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null,
            LastUsedAt = r.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(6)),
            Tampered = tampered,
            MadeFor = tampered ? null : madeFor,
            Limits = tampered ? null : limits,
        };
    }

    /// <summary>
    /// The limits in the four columns from <paramref name="first"/> (<c>rate_limit, rate_window_s, tokens_per_day,
    /// concurrent_limit</c>), and whether they make limits at all: a value no command writes (a rate without its
    /// window, a window that is not a second, minute, hour or day, a count out of range) is not read as anything,
    /// and the row is refused as changed.
    /// </summary>
    private static (ClientKeyLimits? Limits, bool Ok) ReadLimits(DbDataReader r, int first)
    {
        long? Nullable(int ordinal) => r.IsDBNull(ordinal) ? null : r.GetInt64(ordinal);
        var (count, window, tokens, concurrent) = (Nullable(first), Nullable(first + 1), Nullable(first + 2), Nullable(first + 3));
        if (count is null && window is null && tokens is null && concurrent is null)
        {
            return (null, true);
        }

        var rate = RateLimit.FromStored(count, window);
        var ok = (count is null && window is null) == (rate is null)
            && (tokens is null or (>= 1 and <= ClientKeyLimits.MaxCount))
            && (concurrent is null or (>= 1 and <= ClientKeyLimits.MaxConcurrent));
        return ok ? (new ClientKeyLimits(rate, tokens, (int?)concurrent), true) : (null, false);
    }

    /// <summary>The four limit columns' values for <paramref name="limits"/>, in <see cref="KeyColumns"/>' order.</summary>
    public static (long? RateCount, long? RateWindowSeconds, long? TokensPerDay, long? Concurrent) LimitColumns(ClientKeyLimits? limits) =>
        (limits?.Rate?.Count, limits?.Rate?.WindowSeconds, limits?.TokensPerDay, limits?.Concurrent);

    /// <summary>The seal of a client-key row with these fields.</summary>
    public string SealKey(string name, string keyId, string secretFingerprint, string credentialsJson, long createdAt, long? expiresAt, long? revokedAt, string? madeFor, ClientKeyLimits? limits = null) =>
        protector.SealRow(RowSeal.ClientKey(name, keyId, secretFingerprint, credentialsJson, createdAt, expiresAt, revokedAt, madeFor, limits));

    /// <summary>Notes that the key <paramref name="keyId"/> was revoked or deleted: this instance never accepts it again.</summary>
    public void RememberRevoked(string keyId) => _revokedKeyIds.TryAdd(keyId, 0);

    /// <summary>Whether <paramref name="value"/> is the marker <see cref="SealExistingRows"/> records.</summary>
    public bool IsRowsSealedMarker(string? value) => protector.VerifyRow(RowSeal.RowsSealedMarker(), value);

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

    /// <summary>Each kind and state with its text form, as rows store it (and commands print states).</summary>
    private static readonly (CredentialKind Value, string Text)[] Kinds = [(CredentialKind.ApiKey, "api-key"), (CredentialKind.OAuth, "oauth")];

    private static readonly (CredentialState Value, string Text)[] States =
        [(CredentialState.Ok, "ok"), (CredentialState.NeedsAuth, "needs-auth"), (CredentialState.Quarantined, "quarantined")];

    public static string KindText(CredentialKind kind) => TextOf(Kinds, kind);

    public static CredentialKind? ParseKind(string text) => ValueOf(Kinds, text);

    public static string StateText(CredentialState state) => TextOf(States, state);

    public static CredentialState? ParseState(string text) => ValueOf(States, text);

    private static string TextOf<T>((T Value, string Text)[] names, T value)
        where T : struct, Enum
    {
        foreach (var (candidate, text) in names)
        {
            if (EqualityComparer<T>.Default.Equals(candidate, value))
            {
                return text;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(value), value, null);
    }

    private static T? ValueOf<T>((T Value, string Text)[] names, string text)
        where T : struct, Enum
    {
        foreach (var (value, candidate) in names)
        {
            if (string.Equals(candidate, text, StringComparison.Ordinal))
            {
                return value;
            }
        }

        return null;
    }
}

/// <summary>A credential row's content columns, ready to write.</summary>
internal sealed record PatchedContent(
    string State, string? ReasonJson, string MetadataJson, string KeyId, byte[] SealedSecrets,
    string? RefreshTokenFingerprint, string? AccessTokenFingerprint);
