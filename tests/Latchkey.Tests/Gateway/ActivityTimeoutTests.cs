using Latchkey.Gateway;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Gateway;

public sealed class ActivityTimeoutTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Fact]
    public void Token_NoProgressForTheLimit_FiresAndIsExpired()
    {
        var time = new FakeTimeProvider();
        using var activity = new ActivityTimeout(Limit, time, CancellationToken.None);

        time.Advance(Limit - TimeSpan.FromSeconds(1));
        Assert.False(activity.Token.IsCancellationRequested);
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(activity.Token.IsCancellationRequested);
        Assert.True(activity.Expired);
    }

    [Fact]
    public void Restart_ProgressBeforeTheLimit_NeverFiresWhileItKeepsMoving()
    {
        var time = new FakeTimeProvider();
        using var activity = new ActivityTimeout(Limit, time, CancellationToken.None);

        for (var i = 0; i < 10; i++) // five minutes in all, never 30 s without progress
        {
            time.Advance(Limit - TimeSpan.FromSeconds(1));
            activity.Restart();
        }

        Assert.False(activity.Token.IsCancellationRequested);
        time.Advance(Limit);
        Assert.True(activity.Expired);
    }

    [Fact]
    public void Token_OuterCancelled_FiresButIsNotExpired()
    {
        var time = new FakeTimeProvider();
        using var outer = new CancellationTokenSource();
        using var activity = new ActivityTimeout(Limit, time, outer.Token);

        outer.Cancel();

        Assert.True(activity.Token.IsCancellationRequested);
        Assert.False(activity.Expired);
        activity.Restart(); // after the token fired: nothing
        Assert.True(activity.Token.IsCancellationRequested);
    }
}
