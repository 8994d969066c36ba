using Latchkey.Audit;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Audit;

/// <summary>The per-source and global budgets for audit entries of refused requests, on a fake clock.</summary>
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

    [Fact]
    public void TryTake_ThousandSourcesFlood_TotalBoundedByTheGlobalBudget()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 100, perSecond: 10, maxSources: 1024, globalBurst: 200, globalPerSecond: 20);
        var taken = 0;
        for (var second = 0; second < 8; second++)
        {
            for (var i = 0; i < 100_000 / 8; i++)
            {
                taken += limiter.TryTake($"10.0.{i % 1000 / 256}.{i % 1000 % 256}") ? 1 : 0;
            }

            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.InRange(taken, 200, 200 + (20 * 8)); // not 1,000 sources x 100: the global bucket holds for all of them
        Assert.Equal(100_000 - taken, limiter.TakeDropped().Sum(d => d.Count));
    }

    [Fact]
    public void TryTake_OneSourceSpendsTheGlobalBudget_OnlyUpToItsOwnBurst()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 5, perSecond: 1, globalBurst: 8, globalPerSecond: 1);
        for (var i = 0; i < 1000; i++)
        {
            limiter.TryTake("10.0.0.1");
        }

        Assert.Equal(3, Enumerable.Range(0, 5).Count(_ => limiter.TryTake("10.0.0.2"))); // what the global budget has left
    }

    [Fact]
    public void TakeDropped_ManySourcesDropped_AtMostTheLimitLargestFirstAndTheRestAddedUp()
    {
        var limiter = new RefusedEntryLimiter(_time, burst: 1, perSecond: 0.001, maxSources: 1024, globalBurst: 1_000_000);
        for (var i = 0; i < 500; i++)
        {
            for (var n = 0; n <= i % 50; n++)
            {
                limiter.TryTake($"10.1.{i / 256}.{i % 256}");
            }
        }

        var dropped = limiter.TakeDropped();

        Assert.Equal(RefusedEntryLimiter.MaxSummaries, dropped.Count);
        Assert.Equal(RefusedEntryLimiter.OtherSources, dropped[^1].Source);
        Assert.All(dropped.Take(dropped.Count - 1), d => Assert.Equal(49, d.Count)); // the loudest sources by name
        Assert.Equal(Enumerable.Range(0, 500).Sum(i => i % 50), dropped.Sum(d => d.Count));
    }
}
