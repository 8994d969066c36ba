namespace Latchkey.Tokens;

/// <summary>The token engine's timings ("Timings" in docs/failure-modes.md). Defaults suit a laptop and a team gateway alike.</summary>
internal sealed record TokenEngineOptions
{
    /// <summary>L: how long a refresh lease lasts; renewed every third of it while the request runs.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>How long a caller waits for a refresh that another process is making before it gives up (retryable).</summary>
    public TimeSpan WaitBudget { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The whole budget of one shared refresh flight, independent of any caller's cancellation, so one caller giving up never
    /// fails the others that joined the flight.</summary>
    public TimeSpan FlightTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>The lifetime assumed when a token response has no <c>expires_in</c> and the token is not a JWT.</summary>
    public TimeSpan DefaultLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How many refreshes one call may make when each new token is already unusable once stored (the refresh
    /// took longer than the token lives); then the call is answered retryable with <c>expired_before_use</c>.</summary>
    public int MaxRefreshesPerCall { get; init; } = 3;

    /// <summary>
    /// How long the token of a forced refresh (one made only because an upstream refused a still-fresh token) is
    /// protected from another forced refresh: while it is younger than this and refused too, the engine hands it
    /// back with <c>refresh_skipped</c> instead of spending the grant again.
    /// </summary>
    public TimeSpan ForcedRefreshInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Whether a lost refresh response is retried once with the same refresh token (the default; see
    /// "Lost-response recovery" in docs/failure-modes.md for why).</summary>
    public bool RetryLostResponseOnce { get; init; } = true;
}
