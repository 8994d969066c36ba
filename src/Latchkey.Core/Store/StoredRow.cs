using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Latchkey.Store;

/// <summary>
/// A credential row exactly as either backend stores it, before any decoding. Both backends share one row format
/// (the same columns, times in unix milliseconds), so one reader serves them both. <see cref="Seal"/> is the row's
/// seal (<see cref="RowSeal"/>), checked by <see cref="RowCodec.Decode"/> before anything in the row is trusted;
/// the last refresh error and the last upstream failure, written without a content write, carry seals of their own.
/// </summary>
internal sealed record StoredRow(
    string Id, string Name, string Kind, long Version, string State, string? ReasonJson, string MetadataJson,
    string KeyId, byte[] SealedSecrets, string? RefreshTokenFingerprint, long CreatedAt, long UpdatedAt,
    string? AccessTokenFingerprint, RefreshCoordination Coordination, UpstreamFailure? UpstreamFailure, string? Seal,
    string? LastErrorJson = null, string? LastErrorSeal = null, string? UpstreamFailureJson = null, string? UpstreamFailureSeal = null)
{
    /// <summary>The columns <see cref="From"/> reads, in its order.</summary>
    public const string Columns =
        "id, name, kind, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, created_at, updated_at, " +
        "at_fp, lease_owner, lease_until, lease_epoch, attempt_id, attempt_rt_fp, attempt_owner, attempt_sent_at, attempt_recovery_of, backoff_until, failures, last_error_json, upstream_failure_json, row_mac, last_error_mac, upstream_failure_mac";

    /// <summary>
    /// A saved version in the shape of <see cref="Columns"/>, for <c>FROM credential_history h JOIN credential c ON
    /// c.id = h.credential_id</c>: the record's id, name, kind and creation time with the version's content, its
    /// <c>written_at</c> as <see cref="UpdatedAt"/> and its own seal; no coordination. Standard SQL, for both backends.
    /// </summary>
    public const string SavedColumns =
        "h.credential_id, c.name, c.kind, h.version, h.state, h.reason_json, h.metadata_json, h.key_id, h.secret_ct, h.rt_fp, c.created_at, h.written_at, " +
        "CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(0 AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), " +
        "CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(0 AS INTEGER), CAST(NULL AS TEXT), CAST(NULL AS TEXT), h.row_mac, " +
        "CAST(NULL AS TEXT), CAST(NULL AS TEXT)";

    /// <summary>The tables <see cref="SavedColumns"/> reads from.</summary>
    public const string SavedFrom = "credential_history h JOIN credential c ON c.id = h.credential_id";

    /// <summary>
    /// Reads the current row of <paramref name="r"/> (selected with <see cref="Columns"/>). Coordination times
    /// (lease, attempt, backoff) are moved by <paramref name="clockShiftMs"/>: from the clock that wrote them onto
    /// this process's (0 when this process's clock wrote them). Damaged JSON in coordination columns reads as null.
    /// </summary>
    public static StoredRow From(DbDataReader r, long clockShiftMs)
    {
        DateTimeOffset? Local(int ordinal) => r.IsDBNull(ordinal) ? null : DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(ordinal) + clockShiftMs);
        string? Nullable(int ordinal) => r.IsDBNull(ordinal) ? null : r.GetString(ordinal);
        return new(
            r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetString(4),
            Nullable(5), r.GetString(6), r.GetString(7),
            r.IsDBNull(8) ? [] : (byte[])r.GetValue(8), Nullable(9), r.GetInt64(10), r.GetInt64(11),
            Nullable(12),
            new RefreshCoordination
            {
                Lease = new RefreshLease(Nullable(13), Local(14), r.GetInt64(15)),
                Attempt = Nullable(16) is { } attemptId ? new RefreshAttempt(attemptId, Nullable(17), Nullable(18), Local(19), Nullable(20)) : null,
                BackoffUntil = Local(21),
                Failures = Convert.ToInt32(r.GetValue(22), CultureInfo.InvariantCulture),
                LastError = r.IsDBNull(23) ? null : DecodeJson(r.GetString(23), StoreJsonContext.Default.StateReason),
            },
            r.IsDBNull(24) ? null : DecodeJson(r.GetString(24), StoreJsonContext.Default.UpstreamFailure),
            Nullable(25),
            Nullable(23), Nullable(26), Nullable(24), Nullable(27));
    }

    private static TValue? DecodeJson<TValue>(string json, JsonTypeInfo<TValue> type)
        where TValue : class
    {
        try
        {
            return JsonSerializer.Deserialize(json, type);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
