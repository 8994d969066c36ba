using System.Text.Json.Serialization;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// One credential as <c>status --json</c> and <c>list --json</c> show it. This shape is a public contract
/// (docs/status-json.md): add fields, never rename or remove them.
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
    /// <summary>How close to expiry a credential is shown as <c>expiring</c> when it has no refresh schedule.</summary>
    public static readonly TimeSpan ExpiringWindow = TimeSpan.FromMinutes(5);

    public static CredentialView From(CredentialRecord record, DateTimeOffset now)
    {
        var (state, reason) = Derive(record, now);
        var m = record.Metadata;
        return new CredentialView(
            record.Name,
            RowCodec.KindText(record.Kind),
            state,
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

    /// <summary>
    /// The shown state: the stored one, except that an <c>ok</c> credential past its refresh point (or within
    /// <see cref="ExpiringWindow"/> of expiry) is <c>expiring</c>, and an expired one that cannot be refreshed
    /// needs sign-in.
    /// </summary>
    public static (string State, StateReason? Reason) Derive(CredentialRecord record, DateTimeOffset now)
    {
        if (record.State != CredentialState.Ok)
        {
            return (RowCodec.StateText(record.State), record.Reason);
        }

        var m = record.Metadata;
        if (m.ExpiresAt is not { } expires)
        {
            return ("ok", null);
        }

        var canRefresh = record.Kind == CredentialKind.OAuth && record.RefreshTokenFingerprint is not null;
        if (now >= expires && !canRefresh)
        {
            return ("needs-auth", new StateReason("expired",
                $"The credential '{record.Name}' expired at {expires:u} and has no refresh token.",
                record.Kind == CredentialKind.OAuth ? $"latchkey login {record.Name}" : $"latchkey add {record.Name} --replace --upstream {m.Upstream}",
                expires));
        }

        var refreshPoint = m.RefreshAfter ?? expires - ExpiringWindow;
        return now >= refreshPoint ? ("expiring", null) : ("ok", null);
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
internal sealed partial class CliJsonContext : JsonSerializerContext;
