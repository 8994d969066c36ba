namespace Latchkey.Store;

/// <summary>
/// The coordination state of a record that the token engine uses to refresh each grant once for every process:
/// a lease (for liveness), the durable marker of an in-flight token request (for lost responses), and a shared
/// backoff. Written without a version bump, since it is not content. The fence that makes a refresh safe is the
/// refresh-token fingerprint condition on the content write, never the lease.
/// </summary>
internal sealed record RefreshCoordination
{
    public static RefreshCoordination None { get; } = new();

    public string? LeaseOwner { get; init; }

    public DateTimeOffset? LeaseUntil { get; init; }

    /// <summary>Grows by one on every acquisition; part of the lease compare-and-swap.</summary>
    public long LeaseEpoch { get; init; }

    /// <summary>The in-flight token request, recorded before it was sent; <see langword="null"/> when none.</summary>
    public string? AttemptId { get; init; }

    public string? AttemptRefreshTokenFingerprint { get; init; }

    public string? AttemptOwner { get; init; }

    public DateTimeOffset? AttemptSentAt { get; init; }

    /// <summary>For a recovery attempt (one deliberate retry after a lost response), the attempt it recovers.</summary>
    public string? AttemptRecoveryOf { get; init; }

    /// <summary>No refresh before this time; every process honours it.</summary>
    public DateTimeOffset? BackoffUntil { get; init; }

    /// <summary>Transient failures in a row.</summary>
    public int Failures { get; init; }

    /// <summary>The last transient failure, for status and for callers that cannot be served.</summary>
    public StateReason? LastError { get; init; }
}
