using System.Diagnostics;

namespace Latchkey.Testing;

/// <summary>
/// Waits on the machine's real clock, for tests whose subject is another OS process: a <c>latchkey</c> command or
/// gateway, the store driver, a Node peer, PostgreSQL, sshd. Those processes read the real clock (a token's expiry, a
/// cache's second, a backoff, a lease) and nothing in the test can move it, so these tests wait in real time; code
/// that runs inside the test process takes a <see cref="TimeProvider"/> and is tested with a fake one instead.
/// Every wait is bounded: a condition is polled until it holds or its deadline passes, never slept on for a guess.
/// </summary>
internal static class RealTime
{
    /// <summary>How often a condition is polled unless a test says otherwise.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> has passed; returns
    /// whether it held. The condition is always asked at least once, and once more at the deadline.</summary>
    public static async Task<bool> UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, TimeSpan? interval = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var expired = clock.Elapsed >= timeout;
            if (await condition())
            {
                return true;
            }

            if (expired)
            {
                return false;
            }

            await Task.Delay(Min(interval ?? DefaultInterval, timeout - clock.Elapsed));
        }
    }

    /// <summary>As <see cref="UntilAsync(Func{Task{bool}}, TimeSpan, TimeSpan?)"/> for a synchronous condition.</summary>
    public static Task<bool> UntilAsync(Func<bool> condition, TimeSpan timeout, TimeSpan? interval = null) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, interval);

    /// <summary>Polls <paramref name="probe"/> until <paramref name="done"/> holds for its value or
    /// <paramref name="timeout"/> has passed, and returns the last value probed (the caller asserts on it).
    /// <paramref name="discard"/> releases a value that is probed again (an HTTP response, for one).</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, TimeSpan? interval = null, Action<T>? discard = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var expired = clock.Elapsed >= timeout;
            var value = await probe();
            if (expired || done(value))
            {
                return value;
            }

            discard?.Invoke(value);
            await Task.Delay(Min(interval ?? DefaultInterval, timeout - clock.Elapsed));
        }
    }

    /// <summary>Waits until the real clock has passed <paramref name="instant"/> by <paramref name="margin"/> (100 ms
    /// unless given): a token another process holds has expired, a backoff it recorded has run out.</summary>
    public static Task PastAsync(DateTimeOffset instant, TimeSpan? margin = null)
    {
        var left = instant + (margin ?? TimeSpan.FromMilliseconds(100)) - DateTimeOffset.UtcNow;
        return left > TimeSpan.Zero ? Task.Delay(left) : Task.CompletedTask;
    }

    /// <summary>Lets <paramref name="span"/> of real time pass: a phase of load against other processes, a pace one
    /// byte per second, or the time within which something must <em>not</em> happen (a process must not exit, a
    /// cache must expire). Only for such waits; a condition that will become true is polled with
    /// <see cref="UntilAsync(Func{Task{bool}}, TimeSpan, TimeSpan?)"/>.</summary>
    public static Task ForAsync(TimeSpan span) => Task.Delay(span);

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => TimeSpan.FromTicks(Math.Max(0, Math.Min(a.Ticks, b.Ticks)));
}
