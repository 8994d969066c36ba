using Latchkey.Audit;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Audit;

/// <summary>The per-source budget for audit entries of refused requests, on a fake clock.</summary>
public sealed class RefusedEntryLimiterTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    [Fact]
    public void TryTake_BurstThenEmpty_CountsWhatItRefused()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 5, perSecond: 1);

        var taken = Enumerable.Range(0, 20).Count(_ => limiter.TryTake("127.0.0.1"));

        Assert.Equal(5, taken);
        Assert.Equal([("127.0.0.1", 15L)], limiter.TakeDropped());
        Assert.Empty(limiter.TakeDropped()); // counted once
    }

    [Fact]
    public void TryTake_AfterTime_RefilledAtTheRateUpToTheBurst()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 5, perSecond: 2);
        while (limiter.TryTake("a"))
        {
        }

        _time.Advance(TimeSpan.FromSeconds(1.5));
        var afterOneAndAHalfSeconds = Enumerable.Range(0, 10).Count(_ => limiter.TryTake("a"));
        _time.Advance(TimeSpan.FromHours(1));
        var afterAnHour = Enumerable.Range(0, 10).Count(_ => limiter.TryTake("a"));

        Assert.Equal((3, 5), (afterOneAndAHalfSeconds, afterAnHour));
    }

    [Fact]
    public void TryTake_OneSourceFloods_AnotherSourceKeepsItsWholeBudget()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 5, perSecond: 1);
        for (var i = 0; i < 1000; i++)
        {
            limiter.TryTake("10.0.0.1");
        }

        Assert.Equal(5, Enumerable.Range(0, 5).Count(_ => limiter.TryTake("10.0.0.2")));
    }

    [Fact]
    public void TryTake_MoreSourcesThanTracked_ExtraSourcesShareOneBucketAndMemoryStaysBounded()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 2, perSecond: 0.001, maxSources: 10);
        for (var i = 0; i < 10_000; i++)
        {
            limiter.TryTake($"127.0.{i / 256}.{i % 256}");
            limiter.TryTake($"127.0.{i / 256}.{i % 256}");
            limiter.TryTake($"127.0.{i / 256}.{i % 256}"); // each source empties its bucket: none can be forgotten
        }

        Assert.InRange(limiter.TrackedSources, 1, 11);
        var dropped = limiter.TakeDropped();
        Assert.Contains(dropped, d => d.Source == RefusedEntryLimiter.OtherSources);
        Assert.Equal((10_000 * 3) - (10 * 2) - 2, dropped.Sum(d => d.Count));
    }

    [Fact]
    public void TryTake_IdleSourcesRefilled_ForgottenToMakeRoom()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 2, perSecond: 1, maxSources: 10);
        for (var i = 0; i < 10; i++)
        {
            limiter.TryTake($"10.0.0.{i}");
        }

        _time.Advance(TimeSpan.FromSeconds(5)); // every bucket is full again, nothing counted

        Assert.True(limiter.TryTake("10.0.1.1"));
        Assert.True(limiter.TryTake("10.0.1.1"));
        Assert.Equal(1, limiter.TrackedSources);
    }
}
