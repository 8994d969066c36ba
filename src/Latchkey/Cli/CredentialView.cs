using System.Text.Json.Serialization;
using Latchkey.Store;
using Latchkey.Tokens;

namespace Latchkey.Cli;

/// <summary>
/// One credential as <c>status --json</c> and <c>list --json</c> show it. This shape is a public contract
/// (docs/status-json.md): add fields, never rename or remove them. Its <c>state</c> and <c>reason</c> are the
/// credential's <see cref="CredentialStatusView"/>.
/// </summary>
internal sealed record CredentialView(
    string Name,
    string Kind,
    string State,
    ReasonView? Reason,
    string? Upstream,
    ScopesView Scopes,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset UpdatedAt,
    long Version,
    string? Issuer,
    string? Resource,
    InjectionView Injection,
    IReadOnlyList<string> Quirks,
    ReasonView? LastError,
    UpstreamFailureView? LastUpstreamFailure,
    McpView? Mcp = null)
{
    public static CredentialView From(CredentialRecord record, DateTimeOffset now)
    {
        var status = CredentialStatusView.Derive(record, now);
        var reason = status.Reason;
        var m = record.Metadata;
        return new CredentialView(
            record.Name,
            RowCodec.KindText(record.Kind),
            status.Text,
            reason is null ? null : new ReasonView(reason.Code, reason.Message, reason.Fix, reason.At),
            m.Upstream,
            new ScopesView(m.ScopesRequested, m.ScopesGranted),
            m.ExpiresAt,
            record.UpdatedAt,
            record.Version,
            m.Issuer,
            m.Resource,
            new InjectionView(m.Injection.Header, m.Injection.Format),
            m.Quirks,
            record.Coordination.LastError is { } e ? new ReasonView(e.Code, e.Message, e.Fix, e.At) : null,
            record.LastUpstreamFailure is { } u ? new UpstreamFailureView(u.Code, u.Message, u.Fix, u.Status, u.RequestId, u.At) : null,
            m.McpTransport is { } transport ? McpView.From(record, transport) : null);
    }
}

/// <summary>For an MCP server (<c>latchkey mcp add</c>): where it is, how it is reached, and what it still needs.</summary>
/// <param name="Url">The server's URL as added (the proxy's upstream).</param>
/// <param name="Transport"><c>streamable-http</c> or <c>sse</c>.</param>
/// <param name="Proxy">The gateway path that serves it, <c>/mcp/NAME</c>.</param>
/// <param name="ScopesMissing">Scopes a step-up asked for (now in <c>scopes.requested</c>) that the grant does not have; empty normally.</param>
/// <param name="State"><c>ok</c>, or <c>needs-scope</c> while <paramref name="ScopesMissing"/> is not empty (tools that need no more still work).</param>
/// <param name="Reason">Why <c>needs-scope</c> (code <c>insufficient_scope</c>, the scopes named, the login command), else null.</param>
internal sealed record McpView(string Url, string Transport, string Proxy, IReadOnlyList<string> ScopesMissing, string State, ReasonView? Reason)
{
    public static McpView From(CredentialRecord record, string transport)
    {
        var m = record.Metadata;
        var missing = m.ScopesRequested.Where(s => s != "offline_access" && !m.ScopesGranted.Contains(s, StringComparer.Ordinal)).ToList();
        var reason = missing.Count == 0 ? null : new ReasonView("insufficient_scope",
            $"The MCP server asked for the scope(s) {string.Join(' ', missing)}, which the grant does not have; calls that need them are refused.",
            $"latchkey login {record.Name}", record.UpdatedAt);
        return new McpView(m.Upstream ?? string.Empty, transport, $"/mcp/{record.Name}", missing, missing.Count == 0 ? "ok" : "needs-scope", reason);
    }
}

internal sealed record ReasonView(string Code, string Message, string? Fix, DateTimeOffset At);

/// <summary>The last authentication failure an upstream answered the gateway with, and the upstream's request id.</summary>
internal sealed record UpstreamFailureView(string Code, string Message, string? Fix, int Status, string? RequestId, DateTimeOffset At);

internal sealed record ScopesView(IReadOnlyList<string> Requested, IReadOnlyList<string> Granted);

internal sealed record InjectionView(string Header, string Format);

/// <summary>A doctor finding, as <c>doctor --json</c> shows it.</summary>
internal sealed record DoctorFinding(string Check, string Status, string Detail, string? Fix);

internal sealed record VersionView(long Version, string State, DateTimeOffset WrittenAt, bool Readable, bool Tampered);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true)]
[JsonSerializable(typeof(IReadOnlyList<CredentialView>))]
[JsonSerializable(typeof(IReadOnlyList<DoctorFinding>))]
[JsonSerializable(typeof(IReadOnlyList<VersionView>))]
[JsonSerializable(typeof(IReadOnlyList<KeyView>))]
[JsonSerializable(typeof(IReadOnlyList<KeyLocationView>))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
