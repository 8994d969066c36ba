using Latchkey.Store;

namespace Latchkey.Tokens;

/// <summary>What the token engine gives a caller.</summary>
internal enum TokenStatus
{
    /// <summary>A usable access token.</summary>
    Ok,

    /// <summary>Someone must sign in again; the reason says why and what to run.</summary>
    NeedsAuth,

    /// <summary>Not now (the server is down, a refresh is in flight elsewhere); try again. The credential is intact.</summary>
    Retryable,

    /// <summary>The stored record cannot be read; the reason says how to restore or remove it.</summary>
    Quarantined,

    /// <summary>No credential has that name.</summary>
    NotFound,
}

/// <summary>The engine's answer: a token, or why there is none. <see cref="ToString"/> never shows the token.</summary>
internal sealed record TokenResult(TokenStatus Status, string? AccessToken, StateReason? Reason, DateTimeOffset? ExpiresAt)
{
    public static TokenResult Ok(string accessToken, DateTimeOffset? expiresAt) => new(TokenStatus.Ok, accessToken, null, expiresAt);

    public static TokenResult NeedsAuth(StateReason? reason) => new(TokenStatus.NeedsAuth, null, reason, null);

    public static TokenResult Retryable(StateReason reason) => new(TokenStatus.Retryable, null, reason, null);

    public static TokenResult NotFound { get; } = new(TokenStatus.NotFound, null, null, null);

    public override string ToString() => $"TokenResult({Status}, token: {(AccessToken is null ? "none" : "***")}, reason: {Reason?.Code})";
}
