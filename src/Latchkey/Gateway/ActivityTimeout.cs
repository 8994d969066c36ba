namespace Latchkey.Gateway;

/// <summary>
/// A cancellation token for copying a body: it fires when the copy makes no progress for the limit (nothing
/// called <see cref="Restart"/> in that time), or when the outer token fires. Restart after every read and every
/// write, so a slow but moving stream is never cut, and an idle one is cut after the limit whatever its length.
/// </summary>
/// <remarks>The timer runs on the injected <see cref="TimeProvider"/>. One instance serves one copy, on one
/// thread at a time; dispose it when the copy ends.</remarks>
internal sealed class ActivityTimeout : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly CancellationToken _outer;
    private readonly CancellationTokenRegistration _registration;
    private readonly TimeSpan _limit;

    /// <param name="limit">The longest stretch without progress; <see cref="Timeout.InfiniteTimeSpan"/> for none.</param>
    /// <param name="time">The clock the limit is measured on.</param>
    /// <param name="outer">Cancels the copy as well (the agent went away, a caller's own timeout).</param>
    public ActivityTimeout(TimeSpan limit, TimeProvider time, CancellationToken outer)
    {
        _limit = limit;
        _outer = outer;
        _source = new CancellationTokenSource(limit, time);
        _registration = outer.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _source);
    }

    /// <summary>Cancelled after the limit without progress, or when the outer token is.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>True when the limit passed without progress (and the outer token had not fired).</summary>
    public bool Expired => _source.IsCancellationRequested && !_outer.IsCancellationRequested;

    /// <summary>Progress: the limit counts again from now. Does nothing once the token has fired.</summary>
    public void Restart()
    {
        if (!_source.IsCancellationRequested)
        {
            _source.CancelAfter(_limit);
        }
    }

    public void Dispose()
    {
        _registration.Dispose();
        _source.Dispose();
    }
}
