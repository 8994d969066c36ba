using Latchkey.Dashboard;
using Latchkey.Store;

namespace Latchkey.Tests.Dashboard;

/// <summary>
/// <c>latchkey dashboard</c> keeps the page holding its one-time link only until the link is used or expires:
/// <see cref="SignInLinks.WaitForUseAsync"/> tells which came first.
/// </summary>
public sealed class SignInLinksTests : IDisposable
{
    private readonly TempHome _temp = new();
    private readonly StoreHome _home;

    public SignInLinksTests()
    {
        _home = new StoreHome(_temp.Path);
        _home.EnsureReady();
    }

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task WaitForUse_LinkRedeemed_TrueAtOnce()
    {
        var time = new ManualTime();
        var token = SignInLinks.Mint(_home, time);
        var waiting = SignInLinks.WaitForUseAsync(_home, token, time, default);
        Assert.False(waiting.IsCompleted);

        Assert.True(SignInLinks.TryRedeem(_home, token, time));

        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task WaitForUse_NobodyUsesTheLink_FalseOnceItExpiredAndTheLinkIsGone()
    {
        var time = new ManualTime();
        var token = SignInLinks.Mint(_home, time);
        var waiting = SignInLinks.WaitForUseAsync(_home, token, time, default);
        time.Advance(SignInLinks.Lifetime - TimeSpan.FromSeconds(1));
        await RealTime.ForAsync(TimeSpan.FromMilliseconds(500)); // the waiter's loop runs a few times: still within its lifetime on the fake clock
        Assert.False(waiting.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(1));

        Assert.False(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Empty(Directory.GetFiles(Path.Combine(_home.Path, "ui-links")));
        Assert.False(SignInLinks.TryRedeem(_home, token, time));
    }

    [Fact]
    public async Task WaitForUse_Cancelled_Throws()
    {
        var time = new ManualTime();
        var token = SignInLinks.Mint(_home, time);
        using var cancel = new CancellationTokenSource();
        var waiting = SignInLinks.WaitForUseAsync(_home, token, time, cancel.Token);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>A clock that moves only when told (the poll's timer still runs on the system clock).</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = DateTimeOffset.UtcNow.UtcTicks;

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
