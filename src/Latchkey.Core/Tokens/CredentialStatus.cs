using Latchkey.Store;

namespace Latchkey.Tokens;

/// <summary>
/// A credential's state as people and scripts are shown it (<c>status --json</c>'s <c>state</c>, the tables, the
/// dashboard). It is the stored <see cref="CredentialState"/>, with one state that is never stored:
/// <see cref="Expiring"/>, derived from the expiry when shown (<see cref="CredentialStatusView.Derive"/>).
/// </summary>
internal enum CredentialStatus
{
    /// <summary><c>ok</c>: usable, no refresh due yet.</summary>
    Ok,

    /// <summary><c>expiring</c>: usable, past its refresh point (or within <see cref="CredentialStatusView.ExpiringWindow"/>
    /// of expiry when it has no refresh schedule).</summary>
    Expiring,

    /// <summary><c>needs-auth</c>: someone must sign in again (or replace the key); the reason says why and how.</summary>
    NeedsAuth,

    /// <summary><c>quarantined</c>: the stored row cannot be read; restore a version or remove it.</summary>
    Quarantined,
}

/// <summary>
/// A credential's <see cref="CredentialStatus"/> now, with its reason: the code, the sentence and the command that
/// fixes it (<see cref="StateReason"/>), or null when there is nothing to say. Never holds secret material.
/// </summary>
internal sealed record CredentialStatusView(CredentialStatus Status, StateReason? Reason)
{
    /// <summary>How close to expiry a credential is shown as <c>expiring</c> when it has no refresh schedule.</summary>
    public static readonly TimeSpan ExpiringWindow = TimeSpan.FromMinutes(5);

    /// <summary>The state's word in <c>status --json</c> (a public contract, docs/status-json.md: never renamed).</summary>
    public string Text => TextOf(Status);

    /// <summary>Whether the credential serves requests (<c>ok</c> or <c>expiring</c>).</summary>
    public bool IsWorking => Status is CredentialStatus.Ok or CredentialStatus.Expiring;

    /// <summary>Whether a person must act (<c>needs-auth</c> or <c>quarantined</c>).</summary>
    public bool NeedsAttention => !IsWorking;

    /// <summary>
    /// The state shown for <paramref name="record"/> at <paramref name="now"/>: the stored one, except that an
    /// <c>ok</c> credential past its refresh point (or within <see cref="ExpiringWindow"/> of expiry) is
    /// <c>expiring</c>, and an expired one that cannot be refreshed needs sign-in (reason <c>expired</c>, with the
    /// command that brings it back).
    /// </summary>
    public static CredentialStatusView Derive(CredentialRecord record, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.State != CredentialState.Ok)
        {
            return new CredentialStatusView(Of(record.State), record.Reason);
        }

        var m = record.Metadata;
        if (m.ExpiresAt is not { } expires)
        {
            return new CredentialStatusView(CredentialStatus.Ok, null);
        }

        var canRefresh = record.Kind == CredentialKind.OAuth && record.RefreshTokenFingerprint is not null;
        if (now >= expires && !canRefresh)
        {
            return new CredentialStatusView(CredentialStatus.NeedsAuth, new StateReason("expired",
                $"The credential '{record.Name}' expired at {expires:u} and has no refresh token.",
                record.Kind == CredentialKind.OAuth ? $"latchkey login {record.Name}" : $"latchkey add {record.Name} --replace --keep-settings < key.txt",
                expires));
        }

        var refreshPoint = m.RefreshAfter ?? expires - ExpiringWindow;
        return new CredentialStatusView(now >= refreshPoint ? CredentialStatus.Expiring : CredentialStatus.Ok, null);
    }

    /// <summary>The shown state of a stored one (a saved version's, for instance).</summary>
    public static CredentialStatus Of(CredentialState state) => state switch
    {
        CredentialState.Ok => CredentialStatus.Ok,
        CredentialState.NeedsAuth => CredentialStatus.NeedsAuth,
        CredentialState.Quarantined => CredentialStatus.Quarantined,
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    /// <summary>The word for <paramref name="status"/> in <c>status --json</c>.</summary>
    public static string TextOf(CredentialStatus status) => status switch
    {
        CredentialStatus.Ok => "ok",
        CredentialStatus.Expiring => "expiring",
        CredentialStatus.NeedsAuth => "needs-auth",
        CredentialStatus.Quarantined => "quarantined",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };
}
