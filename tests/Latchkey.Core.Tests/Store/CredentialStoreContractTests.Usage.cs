using Latchkey.Audit;
using Latchkey.Usage;

namespace Latchkey.Tests.Store;

/// <summary>The token usage part of the contract (<see cref="IUsageLog"/>), on every backend.</summary>
public abstract partial class CredentialStoreContractTests
{
    private static readonly DateOnly Day1 = new(2026, 3, 1);

    /// <summary>Drops <c>usage_daily</c> and sets the schema version back to the one before it, as a store from before usage.</summary>
    internal abstract Task TurnBackBeforeUsageAsync();

    private IUsageLog Usage => (IUsageLog)Store;

    private static UsageCount Count(string key = "agent-a", string credential = "anth", string model = "claude-x", DateOnly? day = null, long input = 10, long output = 20, long creation = 3, long read = 4, long requests = 1) =>
        new(day ?? Day1, key, credential, model, requests, input, output, creation, read);

    [Fact]
    public async Task AddUsageAsync_SameRowTwiceAndOthers_AddedUpAndReadBackOrderedWithEveryField()
    {
        await Usage.AddUsageAsync([Count(), Count(model: "b-model", input: 1, output: 2, creation: 0, read: 0)], default);
        await Usage.AddUsageAsync([Count(input: 5, output: 6, creation: 7, read: 8), Count(key: "", credential: "oai", model: "", day: Day1.AddDays(1))], default);

        var rows = await Usage.QueryUsageAsync(Day1, default);

        Assert.Equal(
            [
                new UsageCount(Day1, "agent-a", "anth", "b-model", 1, 1, 2, 0, 0),
                new UsageCount(Day1, "agent-a", "anth", "claude-x", 2, 15, 26, 10, 12),
                new UsageCount(Day1.AddDays(1), "", "oai", "", 1, 10, 20, 3, 4),
            ],
            rows);
    }

    [Fact]
    public async Task AddUsageAsync_OneBatchNamingARowTwice_AddedUpNotRefused()
    {
        await Usage.AddUsageAsync([Count(), Count(), Count()], default);

        var row = Assert.Single(await Usage.QueryUsageAsync(Day1, default));
        Assert.Equal((3, 30, 60), (row.Requests, row.InputTokens, row.OutputTokens));
    }

    [Fact]
    public async Task TokensUsedAsync_KeyAndDay_EveryTokenOfThatKeyOnThatDayOverCredentialsAndModels()
    {
        await Usage.AddUsageAsync(
        [
            Count(), Count(credential: "oai", model: "gpt"), Count(key: "agent-b"), Count(day: Day1.AddDays(-1)), Count(key: "", input: 1000),
        ], default);

        Assert.Equal(2 * (10 + 20 + 3 + 4), await Usage.TokensUsedAsync("agent-a", Day1, default));
        Assert.Equal(37, await Usage.TokensUsedAsync("agent-b", Day1, default));
        Assert.Equal(1000 + 20 + 3 + 4, await Usage.TokensUsedAsync("", Day1, default));
        Assert.Equal(0, await Usage.TokensUsedAsync("nobody", Day1, default));
        Assert.Equal(0, await Usage.TokensUsedAsync("agent-a", Day1.AddDays(1), default));
    }

    [Fact]
    public async Task QueryUsageAsync_Since_OnlyThatDayAndLater()
    {
        await Usage.AddUsageAsync([.. Enumerable.Range(0, 5).Select(i => Count(day: Day1.AddDays(i)))], default);

        var rows = await Usage.QueryUsageAsync(Day1.AddDays(3), default);

        Assert.Equal([Day1.AddDays(3), Day1.AddDays(4)], rows.Select(r => r.Day));
        Assert.Empty(await Usage.QueryUsageAsync(Day1.AddDays(30), default));
    }

    [Fact]
    public async Task AddUsageAsync_AbsurdCounts_NegativeCountAsZeroAndSumsSaturateWithoutLosingTheBatch()
    {
        await Usage.AddUsageAsync([Count(input: long.MaxValue - 5, output: -7, creation: long.MinValue, read: 1)], default);
        await Usage.AddUsageAsync([Count(input: 100, output: 1), Count(key: "other")], default);

        var rows = await Usage.QueryUsageAsync(Day1, default);

        var row = rows.Single(r => r.ClientKey == "agent-a");
        Assert.Equal((2, long.MaxValue, 1, 3, 5), (row.Requests, row.InputTokens, row.OutputTokens, row.CacheCreationTokens, row.CacheReadTokens));
        Assert.Equal(long.MaxValue, await Usage.TokensUsedAsync("agent-a", Day1, default));
        Assert.Equal(37, await Usage.TokensUsedAsync("other", Day1, default)); // the rest of the batch was written
    }

    [Fact]
    public async Task AuditAppendAsync_WithUsageSameBatchAgainAfterALostAnswer_EntriesAndUsageStoredOnce()
    {
        AuditEntry[] batch = [Entry(1), Entry(2)];
        UsageCount[] usage = [Count(), Count(model: "other")];

        await Audit.AppendAsync(batch, usage, default);
        await Audit.AppendAsync(batch, usage, default);

        Assert.Equal(2, (await Audit.QueryAsync(new AuditQuery(), default)).Count);
        Assert.Equal(2 * 37, await Usage.TokensUsedAsync("agent-a", Day1, default));
    }

    [Fact]
    public async Task AddUsageAsync_TwoInstancesAtOnce_EveryCountAddedExactly()
    {
        await using var other = await OpenAgainAsync();

        await Task.WhenAll(Enumerable.Range(0, 40).Select(i =>
            ((IUsageLog)(i % 2 == 0 ? Store : other)).AddUsageAsync([Count(), Count(model: "m" + (i % 3))], default)));

        var rows = await ((IUsageLog)other).QueryUsageAsync(Day1, default);
        Assert.Equal(80, rows.Sum(r => r.Requests));
        Assert.Equal(40, rows.Single(r => r.Model == "claude-x").Requests);
        Assert.Equal(80 * 37, await Usage.TokensUsedAsync("agent-a", Day1, default));
    }

    [Fact]
    public async Task Open_StoreFromBeforeUsage_MigratesAndKeepsItsRecordsAndAuditLog()
    {
        await Store.CreateAsync(ApiKey("anth"), default);
        await Audit.AppendAsync([Entry(1)], default);
        await TurnBackBeforeUsageAsync();

        await using var migrated = await OpenAgainAsync();
        await ((IUsageLog)migrated).AddUsageAsync([Count()], default);

        Assert.NotNull(await migrated.GetAsync("anth", default));
        Assert.Single(await ((IAuditLog)migrated).QueryAsync(new AuditQuery(), default));
        Assert.Equal(37, await ((IUsageLog)migrated).TokensUsedAsync("agent-a", Day1, default));
    }
}
