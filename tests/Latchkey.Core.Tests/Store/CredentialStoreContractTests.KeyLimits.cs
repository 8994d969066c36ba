using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// Client keys' limits on every backend: kept and sealed with the key's row, changed only by Latchkey, and counted in
/// the store with the SQL both backends run (the counters a team's replicas share). Time passing is written into the
/// counters' rows, as the clock would move them.
/// </summary>
public abstract partial class CredentialStoreContractTests
{
    private static readonly ClientKeyLimits SomeLimits = new(new RateLimit(60, TimeSpan.FromMinutes(1)), 2_000_000, 4);

    private IKeyLimitCounters Counters => (IKeyLimitCounters)Store;

    [Fact]
    public async Task CreateKeyAsync_WithLimits_ListedVerifiedAndKeptThroughRevocation()
    {
        var (_, value) = (await Keys.CreateKeyAsync("limited", ["a"], null, null, SomeLimits, default))!.Value;
        await Keys.CreateKeyAsync("free", ["a"], null, default);

        var listed = (await Keys.ListKeysAsync(default)).ToDictionary(k => k.Name);
        var check = await Keys.VerifyKeyAsync(value, default);
        Assert.True(await Keys.RevokeKeyAsync("limited", default));
        var revoked = await Keys.VerifyKeyAsync(value, default);

        Assert.Equal(SomeLimits, listed["limited"].Limits);
        Assert.Null(listed["free"].Limits);
        Assert.Equal((ClientKeyStatus.Valid, SomeLimits), (check.Status, check.Key!.Limits));
        Assert.Equal((ClientKeyStatus.Revoked, SomeLimits), (revoked.Status, revoked.Key!.Limits));
    }

    [Fact]
    public async Task SetKeyLimitsAsync_ChangeAppliedToTheCurrentLimits_ResealedAndReadBackByAnotherInstance()
    {
        var (_, value) = (await Keys.CreateKeyAsync("k", ["a"], null, "codex", SomeLimits, default))!.Value;

        var (outcome, key) = await Keys.SetKeyLimitsAsync("k", l => l! with { Rate = new RateLimit(10, TimeSpan.FromSeconds(1)), Concurrent = null }, default);
        await using var reopened = await OpenAgainAsync();
        var check = await ((IClientKeyStore)reopened).VerifyKeyAsync(value, default);
        var (cleared, _) = await Keys.SetKeyLimitsAsync("k", _ => null, default);
        var afterClear = await Keys.VerifyKeyAsync(value, default);

        var expected = new ClientKeyLimits(new RateLimit(10, TimeSpan.FromSeconds(1)), 2_000_000, null);
        Assert.Equal(KeyLimitsOutcome.Updated, outcome);
        Assert.Equal(expected, key!.Limits);
        Assert.Equal((ClientKeyStatus.Valid, expected, "codex"), (check.Status, check.Key!.Limits, check.Key.MadeFor));
        Assert.Equal(KeyLimitsOutcome.Updated, cleared);
        Assert.Equal((ClientKeyStatus.Valid, (ClientKeyLimits?)null), (afterClear.Status, afterClear.Key!.Limits));
        Assert.Equal(KeyLimitsOutcome.NotFound, (await Keys.SetKeyLimitsAsync("missing", _ => SomeLimits, default)).Outcome);
    }

    public static TheoryData<string, string> LimitTampering => new()
    {
        { "rate raised", "UPDATE client_key SET rate_limit = 1000000 WHERE name = 'k'" },
        { "rate window widened", "UPDATE client_key SET rate_window_s = 1 WHERE name = 'k'" },
        { "rate removed", "UPDATE client_key SET rate_limit = NULL, rate_window_s = NULL WHERE name = 'k'" },
        { "token budget raised", "UPDATE client_key SET tokens_per_day = 999999999999 WHERE name = 'k'" },
        { "concurrency removed", "UPDATE client_key SET concurrent_limit = NULL WHERE name = 'k'" },
        { "every limit removed", "UPDATE client_key SET rate_limit = NULL, rate_window_s = NULL, tokens_per_day = NULL, concurrent_limit = NULL WHERE name = 'k'" },
        { "unreadable window", "UPDATE client_key SET rate_window_s = 7 WHERE name = 'k'" },
        { "limit added to a key without", "UPDATE client_key SET concurrent_limit = 1 WHERE name = 'free'" },
    };

    [Theory]
    [MemberData(nameof(LimitTampering))]
    public async Task VerifyKeyAsync_LimitChangedInTheDatabase_TamperedAndNotChangeable(string change, string sql)
    {
        var (_, limited) = (await Keys.CreateKeyAsync("k", ["a"], null, null, SomeLimits, default))!.Value;
        var (_, free) = (await Keys.CreateKeyAsync("free", ["a"], null, default))!.Value;

        await ExecuteSqlAsync(sql);
        await using var reopened = await OpenAgainAsync();

        var name = sql.Contains("'free'", StringComparison.Ordinal) ? "free" : "k";
        var check = await ((IClientKeyStore)reopened).VerifyKeyAsync(name == "free" ? free : limited, default);
        Assert.True(check.Status == ClientKeyStatus.Tampered, change);
        Assert.Null(check.Key!.Limits);
        Assert.False(check.Key.Allows("a"));
        Assert.Equal(KeyLimitsOutcome.Tampered, (await ((IClientKeyStore)reopened).SetKeyLimitsAsync(name, _ => null, default)).Outcome);
    }

    [Fact]
    public async Task TakeRequestAsync_InTheStore_TheCountThenRefusedUntilTimeHasPassed()
    {
        var rate = new RateLimit(5, TimeSpan.FromMinutes(1));
        var decisions = new List<LimitDecision>();
        for (var i = 0; i < 7; i++)
        {
            decisions.Add(await Counters.TakeRequestAsync("key1", rate, default));
        }

        var otherKey = await Counters.TakeRequestAsync("key2", rate, default);
        await ExecuteSqlAsync("UPDATE key_limit_state SET rate_tat = rate_tat - 12000000 WHERE key_id = 'key1'"); // 12 s later: two intervals
        var later = new List<bool>();
        for (var i = 0; i < 3; i++)
        {
            later.Add((await Counters.TakeRequestAsync("key1", rate, default)).Allowed);
        }

        Assert.Equal([true, true, true, true, true, false, false], decisions.Select(d => d.Allowed));
        Assert.InRange(decisions[5].RetryAfter, TimeSpan.FromSeconds(11), TimeSpan.FromSeconds(12)); // one interval (12 s), less the time the loop took
        Assert.True(otherKey.Allowed);
        Assert.Equal([true, false, false], later);
    }

    [Fact]
    public async Task TakeRequestAsync_ManyAtOnceFromTwoInstances_ExactlyTheCountPasses()
    {
        await using var other = await OpenAgainAsync();
        var rate = new RateLimit(10, TimeSpan.FromHours(1));
        var counters = new[] { Counters, (IKeyLimitCounters)other };

        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(() => counters[i % 2].TakeRequestAsync("busy", rate, default))));

        Assert.Equal(10, results.Count(r => r.Allowed));
    }

    [Fact]
    public async Task TryTakeSlotAsync_InTheStore_AtMostTheLimitGivenBackAndLapsedSlotsFree()
    {
        await using var other = await OpenAgainAsync();
        var lifetime = TimeSpan.FromSeconds(30);
        var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(i =>
            Task.Run(() => (i % 2 == 0 ? Counters : (IKeyLimitCounters)other).TryTakeSlotAsync("key1", 3, $"lease{i}", lifetime, default))));
        var held = Enumerable.Range(0, 12).Where(i => results[i]).Select(i => $"lease{i}").ToList();

        var full = await Counters.TryTakeSlotAsync("key1", 3, "extra", lifetime, default);
        var otherKey = await Counters.TryTakeSlotAsync("key2", 3, "k2", lifetime, default);
        await Counters.ReleaseSlotAsync("key1", held[0], default);
        var afterRelease = await Counters.TryTakeSlotAsync("key1", 3, "after-release", lifetime, default);

        // a replica that died: its slots are never renewed; once they lapse they no longer count
        await Counters.RenewSlotsAsync(["after-release"], lifetime, default);
        await ExecuteSqlAsync("UPDATE key_lease SET expires_at = expires_at - 31000000 WHERE lease_id <> 'after-release'");
        var afterLapse = new List<bool>();
        for (var i = 0; i < 3; i++)
        {
            afterLapse.Add(await Counters.TryTakeSlotAsync("key1", 3, $"fresh{i}", lifetime, default));
        }

        Assert.Equal(3, held.Count);
        Assert.False(full);
        Assert.True(otherKey);
        Assert.True(afterRelease);
        Assert.Equal([true, true, false], afterLapse); // the renewed one still counts
    }
}
