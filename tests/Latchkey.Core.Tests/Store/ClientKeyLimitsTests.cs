using Latchkey.Store;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Store;

/// <summary>The limits a client key may carry: how people write them, the rate's arithmetic, and counting in memory.</summary>
public sealed class ClientKeyLimitsTests
{
    [Theory]
    [InlineData("60/min", 60, 60)]
    [InlineData("10/s", 10, 1)]
    [InlineData("1000/hour", 1000, 3600)]
    [InlineData(" 5 / day ", 5, 86400)]
    [InlineData("3/minute", 3, 60)]
    [InlineData("7/h", 7, 3600)]
    public void ParseRate_AcceptedForms_CountAndWindow(string text, long count, long seconds)
    {
        var rate = ClientKeyLimits.ParseRate(text, out var problem);

        Assert.Null(problem);
        Assert.Equal(new RateLimit(count, TimeSpan.FromSeconds(seconds)), rate);
        Assert.Equal(rate, ClientKeyLimits.ParseRate(rate!.Value.ToString(), out _)); // what list shows is what set takes
    }

    [Theory]
    [InlineData("60", "a count, a slash and a unit")]
    [InlineData("60/fortnight", "'fortnight' is not a unit")]
    [InlineData("0/min", "'0' is not a whole number")]
    [InlineData("-5/min", "'-5' is not a whole number")]
    [InlineData("1.5/s", "'1.5' is not a whole number")]
    [InlineData("/min", "a count, a slash and a unit")]
    [InlineData("2000000/s", "more than one request per microsecond")]
    public void ParseRate_Malformed_NamesWhatIsWrong(string text, string expected)
    {
        Assert.Null(ClientKeyLimits.ParseRate(text, out var problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
        Assert.Contains("60/min", ClientKeyLimits.RateHint, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseTokens_PerDayOnly()
    {
        Assert.Equal(2_000_000, ClientKeyLimits.ParseTokens("2000000/day", out _));
        Assert.Null(ClientKeyLimits.ParseTokens("2000000/hour", out var perHour));
        Assert.Contains("per UTC day", perHour, StringComparison.Ordinal);
        Assert.Null(ClientKeyLimits.ParseTokens("lots/day", out var words));
        Assert.Contains("'lots' is not a whole number", words, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("4", 4)]
    [InlineData(" 1 ", 1)]
    public void ParseConcurrent_WholeNumber(string text, int expected) => Assert.Equal(expected, ClientKeyLimits.ParseConcurrent(text, out _));

    [Theory]
    [InlineData("0")]
    [InlineData("four")]
    [InlineData("1000001")]
    public void ParseConcurrent_Otherwise_Refused(string text)
    {
        Assert.Null(ClientKeyLimits.ParseConcurrent(text, out var problem));
        Assert.Contains("whole number from 1 to", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_EachLimit_OneLine()
    {
        Assert.Equal("-", ClientKeyLimits.Describe(null));
        Assert.Equal("60/min, 2000000 tokens/day, 4 at once", ClientKeyLimits.Describe(new ClientKeyLimits(new RateLimit(60, TimeSpan.FromMinutes(1)), 2_000_000, 4)));
        Assert.Null(new ClientKeyLimits(null, null, null).OrNull());
    }

    [Fact]
    public void Take_BurstOfTheCountThenOnePerInterval()
    {
        var rate = new RateLimit(10, TimeSpan.FromMinutes(1)); // one every 6 s, up to 10 at once
        long? tat = null;
        var now = 1_000_000_000L;
        for (var i = 0; i < 10; i++)
        {
            var (allowed, next, _) = KeyLimitMath.Take(tat, now, rate);
            Assert.True(allowed, $"request {i}");
            tat = next;
        }

        var refused = KeyLimitMath.Take(tat, now, rate);
        Assert.False(refused.Allowed);
        Assert.Equal(tat, refused.Tat); // a refused request takes nothing
        Assert.Equal(TimeSpan.FromSeconds(6), refused.RetryAfter);

        Assert.False(KeyLimitMath.Take(tat, now + 5_999_999, rate).Allowed);
        Assert.True(KeyLimitMath.Take(tat, now + 6_000_000, rate).Allowed);
    }

    [Fact]
    public void Take_CountThatDoesNotDivideTheWindow_NeverMoreThanTheCountInABurst()
    {
        var rate = new RateLimit(7, TimeSpan.FromMinutes(1));
        long? tat = null;
        var allowed = 0;
        for (var i = 0; i < 20; i++)
        {
            var step = KeyLimitMath.Take(tat, 0, rate);
            allowed += step.Allowed ? 1 : 0;
            tat = step.Tat;
        }

        Assert.Equal(7, allowed);
    }

    [Fact]
    public async Task MemoryCounters_RateOnTheInjectedClock_RefusedUntilTheIntervalPassed()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var counters = new MemoryKeyLimitCounters(time);
        var rate = new RateLimit(3, TimeSpan.FromMinutes(1));

        var first = new List<bool>();
        for (var i = 0; i < 5; i++)
        {
            first.Add((await counters.TakeRequestAsync("k1", rate, default)).Allowed);
        }

        var other = await counters.TakeRequestAsync("k2", rate, default);
        var refused = await counters.TakeRequestAsync("k1", rate, default);
        time.Advance(TimeSpan.FromSeconds(19));
        var early = await counters.TakeRequestAsync("k1", rate, default);
        time.Advance(TimeSpan.FromSeconds(1));
        var onTime = await counters.TakeRequestAsync("k1", rate, default);

        Assert.Equal([true, true, true, false, false], first);
        Assert.True(other.Allowed);
        Assert.Equal(TimeSpan.FromSeconds(20), refused.RetryAfter);
        Assert.False(early.Allowed);
        Assert.True(onTime.Allowed);
    }

    [Fact]
    public async Task MemoryCounters_Slots_AtMostTheLimitAndGivenBack()
    {
        var counters = new MemoryKeyLimitCounters(new FakeTimeProvider());

        Assert.True(await counters.TryTakeSlotAsync("k", 2, "a", TimeSpan.FromSeconds(30), default));
        Assert.True(await counters.TryTakeSlotAsync("k", 2, "b", TimeSpan.FromSeconds(30), default));
        Assert.False(await counters.TryTakeSlotAsync("k", 2, "c", TimeSpan.FromSeconds(30), default));
        Assert.True(await counters.TryTakeSlotAsync("other", 2, "d", TimeSpan.FromSeconds(30), default));
        await counters.ReleaseSlotAsync("k", "a", default);
        await counters.ReleaseSlotAsync("k", "a", default); // twice changes nothing
        Assert.True(await counters.TryTakeSlotAsync("k", 2, "c", TimeSpan.FromSeconds(30), default));
        Assert.False(await counters.TryTakeSlotAsync("k", 2, "e", TimeSpan.FromSeconds(30), default));
    }
}
