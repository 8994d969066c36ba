namespace Latchkey.Audit;

/// <summary>
/// How many audit entries (or log lines) of refused requests may be recorded: a token bucket per source (the peer's
/// address, grouped by the gateway: an IPv4 address, an IPv6 /64, all of loopback as one, or the Unix socket) holding <see cref="Burst"/>
/// entries and refilled at <see cref="PerSecond"/> a second, and on top of them one bucket for all sources together
/// (<see cref="GlobalBurst"/>, refilled at <see cref="GlobalPerSecond"/>). An entry is recorded only when both its
/// source's bucket and the global one have room. What is not recorded is counted per source, and
/// <see cref="TakeDropped"/> hands the counts over for a few summary entries.
/// </summary>
/// <remarks>
/// <para><b>Bounded in total.</b> However many sources an attacker has (every address of a /64, or of a botnet),
/// at most <see cref="GlobalBurst"/> entries plus <see cref="GlobalPerSecond"/> a second are recorded; the
/// per-source buckets only keep one loud source from spending the whole global budget, so a quiet source is still
/// heard while another floods (until the global budget itself runs out). <see cref="TakeDropped"/> returns at most
/// <see cref="MaxSummaries"/> counts (the largest, the rest added up under <see cref="OtherSources"/>), so the summaries
/// are bounded too.</para>
/// <para><b>Bounded memory.</b> At most <see cref="MaxSources"/> sources are tracked. A full bucket with nothing counted
/// is the same as no bucket, so those are forgotten to make room; if every tracked source is still busy, further
/// sources share one bucket (<see cref="OtherSources"/>).</para>
/// <para><b>Why not System.Threading.RateLimiting.</b> Its token bucket refills on a timer of its own, not from an
/// injected <see cref="TimeProvider"/> (so it cannot be tested without sleeping), and its partitioned limiter does not
/// bound how many partitions it keeps.</para>
/// <para>Thread-safe.</para>
/// </remarks>
internal sealed class RefusedEntryLimiter(
    TimeProvider time,
    int burst = RefusedEntryLimiter.DefaultBurst,
    double perSecond = RefusedEntryLimiter.DefaultPerSecond,
    int maxSources = RefusedEntryLimiter.DefaultMaxSources,
    int globalBurst = RefusedEntryLimiter.DefaultGlobalBurst,
    double globalPerSecond = RefusedEntryLimiter.DefaultGlobalPerSecond)
{
    public const int DefaultBurst = 100;
    public const double DefaultPerSecond = 10;
    public const int DefaultMaxSources = 1024;
    public const int DefaultGlobalBurst = 200;
    public const double DefaultGlobalPerSecond = 20;

    /// <summary>The most counts <see cref="TakeDropped"/> returns at once.</summary>
    public const int MaxSummaries = 10;

    /// <summary>The source that sources beyond <see cref="MaxSources"/> share, and under which the smaller counts
    /// beyond <see cref="MaxSummaries"/> are added up.</summary>
    public const string OtherSources = "other sources";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly Bucket _global = new() { Tokens = globalBurst, Updated = time.GetTimestamp() };

    public int Burst => burst;

    public double PerSecond => perSecond;

    public int MaxSources => maxSources;

    public int GlobalBurst => globalBurst;

    public double GlobalPerSecond => globalPerSecond;

    /// <summary>Takes one entry from <paramref name="source"/>'s bucket and the global one; false (and counted) when either is empty.</summary>
    public bool TryTake(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_lock)
        {
            var bucket = BucketOf(source);
            Refill(bucket, burst, perSecond);
            Refill(_global, globalBurst, globalPerSecond);
            if (bucket.Tokens >= 1 && _global.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                _global.Tokens -= 1;
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

    /// <summary>
    /// The sources whose entries were not recorded since the last call, with how many, largest first: at most
    /// <see cref="MaxSummaries"/>, the smaller counts added up under <see cref="OtherSources"/>. Counts restart.
    /// </summary>
    public IReadOnlyList<(string Source, long Count)> TakeDropped()
    {
        lock (_lock)
        {
            var dropped = new List<(string Source, long Count)>();
            foreach (var (source, bucket) in _buckets)
            {
                if (bucket.Dropped > 0)
                {
                    dropped.Add((source, bucket.Dropped));
                    bucket.Dropped = 0;
                }
            }

            if (dropped.Count <= MaxSummaries)
            {
                return dropped;
            }

            dropped.Sort((a, b) => b.Count.CompareTo(a.Count));
            var named = dropped.Where(d => d.Source != OtherSources).Take(MaxSummaries - 1).ToList();
            var rest = dropped.Sum(d => d.Count) - named.Sum(d => d.Count);
            return [.. named, (OtherSources, rest)];
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
            Refill(bucket, burst, perSecond);
            if (bucket.Dropped == 0 && bucket.Tokens >= burst)
            {
                _buckets.Remove(source);
            }
        }
    }

    private void Refill(Bucket bucket, int capacity, double rate)
    {
        var now = time.GetTimestamp();
        var elapsed = time.GetElapsedTime(bucket.Updated, now);
        bucket.Updated = now;
        if (elapsed > TimeSpan.Zero)
        {
            bucket.Tokens = Math.Min(capacity, bucket.Tokens + (elapsed.TotalSeconds * rate));
        }
    }

    private sealed class Bucket
    {
        public double Tokens { get; set; }

        public long Updated { get; set; }

        public long Dropped { get; set; }
    }
}
