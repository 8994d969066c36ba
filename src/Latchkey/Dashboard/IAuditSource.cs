namespace Latchkey.Dashboard;

/// <summary>
/// Where the dashboard reads the audit log from, when the store keeps one. The dashboard's audit page appears only
/// when the gateway's services hold an implementation (<c>services.AddSingleton&lt;IAuditSource&gt;(...)</c>).
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> Called from many requests at once.</para>
/// <para><b>Security.</b> Entries are shown as they are: they must never hold secret material.</para>
/// </remarks>
internal interface IAuditSource
{
    /// <summary>The newest <paramref name="limit"/> entries, newest first.</summary>
    Task<IReadOnlyList<AuditEntry>> RecentAsync(int limit, CancellationToken cancellationToken);
}

/// <summary>One audit-log entry as the dashboard shows it.</summary>
/// <param name="At">When it happened.</param>
/// <param name="Actor">Who or what did it: a client key's name, a replica, a person.</param>
/// <param name="Action">What was done, e.g. <c>refresh</c> or <c>request</c>.</param>
/// <param name="Credential">The credential concerned, if any.</param>
/// <param name="Outcome">How it ended, e.g. <c>ok</c> or a reason code.</param>
/// <param name="Detail">More words, or null.</param>
internal sealed record AuditEntry(DateTimeOffset At, string Actor, string Action, string? Credential, string Outcome, string? Detail);
