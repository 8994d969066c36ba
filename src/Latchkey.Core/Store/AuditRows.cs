using System.Data.Common;
using System.Text;
using Latchkey.Audit;

namespace Latchkey.Store;

/// <summary>The <c>audit_event</c> row format both backends share (times in unix milliseconds).</summary>
internal static class AuditRows
{
    /// <summary>The columns <see cref="Read"/> reads, in its order.</summary>
    public const string Columns = "id, event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica";

    /// <summary>
    /// The <c>WHERE … ORDER BY … LIMIT</c> of a query, with parameters named <c>@since</c>, <c>@credential</c> and
    /// <c>@limit</c> (only those the query uses). Newest first; callers reverse.
    /// </summary>
    public static string Filter(AuditQuery query)
    {
        var sql = new StringBuilder();
        var and = " WHERE ";
        if (query.Since is not null)
        {
            sql.Append(and).Append("at >= @since");
            and = " AND ";
        }

        if (query.Credential is not null)
        {
            sql.Append(and).Append("credential = @credential");
        }

        return sql.Append(" ORDER BY at DESC, id DESC LIMIT @limit").ToString();
    }

    public static AuditEntry Read(DbDataReader r)
    {
        int? NullableInt(int ordinal) => r.IsDBNull(ordinal) ? null : Convert.ToInt32(r.GetValue(ordinal), System.Globalization.CultureInfo.InvariantCulture);
        string? NullableText(int ordinal) => r.IsDBNull(ordinal) ? null : r.GetString(ordinal);
        return new AuditEntry(
            DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(2)), NullableText(3), NullableText(4), r.GetString(5), r.GetString(6), r.GetString(7),
            NullableInt(8) ?? 0, NullableInt(9), r.GetInt64(10), NullableText(11), r.GetString(12))
        {
            Id = r.GetInt64(0),
            EventId = r.GetString(1),
        };
    }

    /// <summary>The path as stored: cut to <see cref="AuditEntry.MaxPathLength"/> characters (an entry's path is already).</summary>
    public static string StoredPath(string path) => AuditEntry.Cut(path, AuditEntry.MaxPathLength)!;
}
