using System.Globalization;
using Latchkey.Audit;

namespace Latchkey.Dashboard;

/// <summary>
/// The dashboard's view of the store's audit log (<see cref="IAuditLog"/>, on both backends): the gateway's
/// requests, newest first, in the words the audit page shows.
/// </summary>
/// <remarks><b>Security.</b> Entries hold a client key's name, never the key, and a path without its query.</remarks>
internal sealed class StoreAuditSource(IAuditLog log) : IAuditSource
{
    public async Task<IReadOnlyList<Dashboard.AuditEntry>> RecentAsync(int limit, CancellationToken cancellationToken)
    {
        var entries = await log.QueryAsync(new AuditQuery(Limit: limit), cancellationToken).ConfigureAwait(false);
        var shown = new List<Dashboard.AuditEntry>(entries.Count);
        for (var i = entries.Count - 1; i >= 0; i--)
        {
            shown.Add(Show(entries[i]));
        }

        return shown;
    }

    /// <summary>One gateway request as a row: who asked, what, and how it ended.</summary>
    public static Dashboard.AuditEntry Show(Audit.AuditEntry e)
    {
        var upstream = e.UpstreamStatus is { } status ? "upstream " + status.ToString(CultureInfo.InvariantCulture) : "no upstream answer";
        return new Dashboard.AuditEntry(
            e.At,
            e.ClientKey ?? "(no valid key)",
            $"{e.Method} {e.Path}",
            e.Credential,
            e.Reason is null ? e.Status.ToString(CultureInfo.InvariantCulture) : $"{e.Status} {e.Reason}",
            $"{upstream}, {e.LatencyMs.ToString(CultureInfo.InvariantCulture)} ms, {e.Route}, {e.Replica}");
    }
}
