namespace Latchkey.Store;

/// <summary>
/// The coordination state of a record that the token engine uses to refresh each grant once for every process:
/// a <see cref="Lease"/> (for liveness), the durable marker of an in-flight token request (<see cref="Attempt"/>, for
/// lost responses), and a shared backoff. Written without a version bump, since it is not content. The fence that
/// makes a refresh safe is the refresh-token fingerprint condition on the content write, never the lease.
/// </summary>
internal sealed record RefreshCoordination
{
    public static RefreshCoordination None { get; } = new();

    /// <summary>Who may refresh now, until when, and the epoch its compare-and-swap checks.</summary>
    public RefreshLease Lease { get; init; } = RefreshLease.None;

    /// <summary>The in-flight token request, recorded before it was sent; <see langword="null"/> when none.</summary>
    public RefreshAttempt? Attempt { get; init; }

    /// <summary>No refresh before this time; every process honours it.</summary>
    public DateTimeOffset? BackoffUntil { get; init; }

    /// <summary>Transient failures in a row.</summary>
    public int Failures { get; init; }

    /// <summary>The last transient failure, for status and for callers that cannot be served.</summary>
    public StateReason? LastError { get; init; }
}

/// <summary>The refresh lease of a record: held by <paramref name="Owner"/> until <paramref name="Until"/>, or by nobody.</summary>
/// <param name="Owner">The process identity holding it; <see langword="null"/> when free.</param>
/// <param name="Until">When it runs out, on this process's clock.</param>
/// <param name="Epoch">Grows by one on every acquisition; part of the lease compare-and-swap.</param>
internal sealed record RefreshLease(string? Owner, DateTimeOffset? Until, long Epoch)
{
    public static RefreshLease None { get; } = new(null, null, 0);
}

/// <summary>A token request recorded before it was sent, so that a lost response is noticed by the next refresher.</summary>
/// <param name="Id">The attempt's identifier.</param>
/// <param name="RefreshTokenFingerprint">The fingerprint of the refresh token it spent.</param>
/// <param name="Owner">The process that sent it.</param>
/// <param name="SentAt">When it was sent, on this process's clock.</param>
/// <param name="RecoveryOf">For a recovery attempt (one deliberate retry after a lost response), the attempt it recovers.</param>
internal sealed record RefreshAttempt(string Id, string? RefreshTokenFingerprint, string? Owner, DateTimeOffset? SentAt, string? RecoveryOf);
