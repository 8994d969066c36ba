namespace Latchkey.Store;

/// <summary>
/// The limits of client keys counted in this process's memory, on the injected clock: for a store only one gateway
/// uses (SQLite), where that gateway sees every request of every key. Exact; forgotten when the gateway stops.
/// </summary>
/// <remarks>Safe to share between threads: one lock, held for a few instructions per request.</remarks>
internal sealed class MemoryKeyLimitCounters(TimeProvider time) : IKeyLimitCounters
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, long> _tat = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _leases = new(StringComparer.Ordinal);

    public bool Shared => false;

    public Task<LimitDecision> TakeRequestAsync(string keyId, RateLimit rate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        var now = KeyLimitMath.Micros(time.GetUtcNow());
        lock (_lock)
        {
            var (allowed, tat, retryAfter) = KeyLimitMath.Take(_tat.TryGetValue(keyId, out var t) ? t : null, now, rate);
            if (allowed)
            {
                _tat[keyId] = tat!.Value;
            }

            return Task.FromResult(new LimitDecision(allowed, retryAfter));
        }
    }

    public Task<bool> TryTakeSlotAsync(string keyId, int limit, string leaseId, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(leaseId);
        lock (_lock)
        {
            if (!_leases.TryGetValue(keyId, out var held))
            {
                _leases[keyId] = held = new HashSet<string>(StringComparer.Ordinal);
            }

            return Task.FromResult(held.Count < limit && held.Add(leaseId));
        }
    }

    public Task ReleaseSlotAsync(string keyId, string leaseId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        lock (_lock)
        {
            if (_leases.TryGetValue(keyId, out var held) && held.Remove(leaseId) && held.Count == 0)
            {
                _leases.Remove(keyId);
            }
        }

        return Task.CompletedTask;
    }

    /// <summary>Nothing to do: a lease in memory lives until it is released (the process that holds it is this one).</summary>
    public Task RenewSlotsAsync(IReadOnlyCollection<string> leaseIds, TimeSpan lifetime, CancellationToken cancellationToken) => Task.CompletedTask;
}
