namespace Latchkey.Store;

/// <summary>
/// The rate limit's arithmetic, written once for every place that counts it (this process's memory, and the SQL both
/// store backends run): the generic cell rate algorithm (GCRA). A key's state is one time, its <i>theoretical arrival
/// time</i> (<c>tat</c>): when its bucket would be full again. A request is let through when, after adding one
/// emission interval (<see cref="IntervalMicros"/>, the window divided by the count) to the later of <c>tat</c> and
/// now, the bucket is still within its capacity (<see cref="CapacityMicros"/>, the count times the interval). So a
/// key of <c>60/min</c> may send 60 requests at once, then one a second; a refused request changes nothing.
/// </summary>
/// <remarks>
/// Times are unix microseconds, so even <c>1000000/s</c> has a whole interval. The interval is rounded up, so a rate is
/// never exceeded; it may fall short of it by a microsecond per request.
/// </remarks>
internal static class KeyLimitMath
{
    /// <summary>The window divided by the count, rounded up: the time one request takes from the bucket.</summary>
    public static long IntervalMicros(RateLimit rate)
    {
        var window = (long)rate.Window.TotalMicroseconds;
        return (window + rate.Count - 1) / rate.Count;
    }

    /// <summary>How far ahead of now <c>tat</c> may be after a request: <see cref="IntervalMicros"/> times the count.</summary>
    public static long CapacityMicros(RateLimit rate) => IntervalMicros(rate) * rate.Count;

    /// <summary>
    /// Takes one request from a bucket whose state is <paramref name="tat"/> (null: never used) at
    /// <paramref name="now"/>: whether it is let through, the state to keep, and, when it is not, how long until it
    /// would be.
    /// </summary>
    public static (bool Allowed, long? Tat, TimeSpan RetryAfter) Take(long? tat, long now, RateLimit rate)
    {
        var next = Math.Max(tat ?? 0, now) + IntervalMicros(rate);
        var capacity = CapacityMicros(rate);
        return next - now <= capacity
            ? (true, next, TimeSpan.Zero)
            : (false, tat, RetryAfter(next - now - capacity));
    }

    /// <summary>The wait before a refused request would pass, from how far (in microseconds) it is over the capacity.</summary>
    public static TimeSpan RetryAfter(long overMicros) => TimeSpan.FromMicroseconds(Math.Max(overMicros, 1));

    /// <summary>Unix microseconds of <paramref name="time"/>.</summary>
    public static long Micros(DateTimeOffset time) => (time - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
}
