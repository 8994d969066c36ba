namespace Latchkey.Audit;

/// <summary>
/// How many audit entries of refused requests each source may have recorded: a token bucket per source (the peer's
/// IP address, or the Unix socket) holding <see cref="Burst"/> entries and refilled at <see cref="PerSecond"/> a
/// second. What a bucket cannot take is counted, and <see cref="TakeDropped"/> hands the counts over for one summary
/// entry per source.
/// </summary>
/// <remarks>
/// <para><b>Bounded.</b> At most <see cref="MaxSources"/> sources are tracked. A full bucket with nothing counted is
/// the same as no bucket, so those are forgotten to make room; if every tracked source is still busy, further
/// sources share one bucket (<see cref="OtherSources"/>). An attacker with many addresses (all of 127.0.0.0/8 is this
/// machine) so gets at most one bucket's worth more, never unbounded memory.</para>
/// <para><b>Why not System.Threading.RateLimiting.</b> Its token bucket refills on a timer of its own, not from an
/// injected <see cref="TimeProvider"/> (so it cannot be tested without sleeping), and its partitioned limiter does not
/// bound how many partitions it keeps.</para>
/// <para>Thread-safe.</para>
/// </remarks>
internal sealed class RefusedEntryLimiter(TimeProvider time, int burst = RefusedEntryLimiter.DefaultBurst, double perSecond = RefusedEntryLimiter.DefaultPerSecond, int maxSources = RefusedEntryLimiter.DefaultMaxSources)
{
    public const int DefaultBurst = 100;
    public const double DefaultPerSecond = 10;
    public const int DefaultMaxSources = 1024;

    /// <summary>The source that sources beyond <see cref="MaxSources"/> share.</summary>
    public const string OtherSources = "other sources";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    public int Burst => burst;

    public double PerSecond => perSecond;

    public int MaxSources => maxSources;

    /// <summary>Takes one entry from <paramref name="source"/>'s bucket; false (and counted) when it is empty.</summary>
    public bool TryTake(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_lock)
        {
            var bucket = BucketOf(source);
            Refill(bucket);
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                return true;
            }

            bucket.Dropped++;
            return false;
        }
    }

    /// <summary>Counts an entry of <paramref name="source"/> that was not recorded for another reason (the queue was full).</summary>
    public void CountDropped(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_lock)
        {
            BucketOf(source).Dropped++;
        }
    }

    /// <summary>The sources whose entries were not recorded since the last call, with how many; their counts restart.</summary>
    public IReadOnlyList<(string Source, long Count)> TakeDropped()
    {
        lock (_lock)
        {
            var dropped = new List<(string, long)>();
            foreach (var (source, bucket) in _buckets)
            {
                if (bucket.Dropped > 0)
                {
                    dropped.Add((source, bucket.Dropped));
                    bucket.Dropped = 0;
                }
            }

            return dropped;
        }
    }

    /// <summary>How many sources have a bucket now (for tests).</summary>
    internal int TrackedSources
    {
        get
        {
            lock (_lock)
            {
                return _buckets.Count;
            }
        }
    }

    private Bucket BucketOf(string source)
    {
        if (_buckets.TryGetValue(source, out var bucket))
        {
            return bucket;
        }

        if (_buckets.Count >= maxSources)
        {
            Forget();
        }

        if (_buckets.Count >= maxSources && source != OtherSources)
        {
            return BucketOf(OtherSources);
        }

        bucket = new Bucket { Tokens = burst, Updated = time.GetTimestamp() };
        _buckets[source] = bucket;
        return bucket;
    }

    /// <summary>Drops the buckets that are full again and have nothing counted: keeping them changes nothing.</summary>
    private void Forget()
    {
        foreach (var (source, bucket) in _buckets)
        {
            Refill(bucket);
            if (bucket.Dropped == 0 && bucket.Tokens >= burst)
            {
                _buckets.Remove(source);
            }
        }
    }

    private void Refill(Bucket bucket)
    {
        var now = time.GetTimestamp();
        var elapsed = time.GetElapsedTime(bucket.Updated, now);
        bucket.Updated = now;
        if (elapsed > TimeSpan.Zero)
        {
            bucket.Tokens = Math.Min(burst, bucket.Tokens + (elapsed.TotalSeconds * perSecond));
        }
    }

    private sealed class Bucket
    {
        public double Tokens { get; set; }

        public long Updated { get; set; }

        public long Dropped { get; set; }
    }
}
