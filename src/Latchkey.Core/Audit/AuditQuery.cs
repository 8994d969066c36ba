namespace Latchkey.Audit;

/// <summary>Which audit entries to read: at or after <see cref="Since"/>, of one credential, the newest <see cref="Limit"/>.</summary>
internal sealed record AuditQuery(DateTimeOffset? Since = null, string? Credential = null, int Limit = 100);
