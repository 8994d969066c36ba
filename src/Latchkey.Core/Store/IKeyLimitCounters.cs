namespace Latchkey.Store;

/// <summary>
/// Where the limits of client keys (<see cref="ClientKeyLimits"/>) are counted: the requests each key sent in its
/// rate window, and its requests in flight. The gateway asks before it sends a request anywhere.
/// </summary>
/// <remarks>
/// <para><b>Two places, one algorithm.</b> A store that several gateways share (PostgreSQL: a team's replicas) counts
/// in the database, so the limits hold across replicas (<see cref="CredentialStore"/>'s SQL, the same on both
/// backends); a store only one gateway can use (SQLite: a home has one gateway) counts in that gateway's memory
/// (<see cref="MemoryKeyLimitCounters"/>), which costs no write per request. Both take a request from the rate with
/// <see cref="KeyLimitMath"/>.</para>
/// <para><b>Leases.</b> A request in flight holds a lease, released when its answer is done. In the database a lease
/// expires unless its gateway renews it, so the leases of a replica that crashed free themselves.</para>
/// <para><b>Trust.</b> The counts are not sealed: someone who can write the database can reset them (docs/security.md
/// says so), though never change the limits themselves.</para>
/// </remarks>
internal interface IKeyLimitCounters
{
    /// <summary>Whether other gateways count in the same place (the leases must then be renewed while they are held).</summary>
    bool Shared { get; }

    /// <summary>Takes one request from the rate of the key <paramref name="keyId"/>; a refused request takes nothing.</summary>
    Task<LimitDecision> TakeRequestAsync(string keyId, RateLimit rate, CancellationToken cancellationToken);

    /// <summary>
    /// Takes the lease <paramref name="leaseId"/> for a request of the key <paramref name="keyId"/> when fewer than
    /// <paramref name="limit"/> of its leases are held (expired ones do not count); it expires after
    /// <paramref name="lifetime"/> unless renewed.
    /// </summary>
    Task<bool> TryTakeSlotAsync(string keyId, int limit, string leaseId, TimeSpan lifetime, CancellationToken cancellationToken);

    /// <summary>Gives back a lease (nothing when it is gone already).</summary>
    Task ReleaseSlotAsync(string keyId, string leaseId, CancellationToken cancellationToken);

    /// <summary>Moves the expiry of the leases <paramref name="leaseIds"/> to <paramref name="lifetime"/> from now.</summary>
    Task RenewSlotsAsync(IReadOnlyCollection<string> leaseIds, TimeSpan lifetime, CancellationToken cancellationToken);
}

/// <summary>Whether a request may go, and when it is refused, how long until it would.</summary>
internal readonly record struct LimitDecision(bool Allowed, TimeSpan RetryAfter)
{
    public static LimitDecision Allow { get; } = new(true, TimeSpan.Zero);
}
