using Latchkey.Audit;

namespace Latchkey.Tests.Store;

/// <summary>The audit log's part of the contract (<see cref="IAuditLog"/>), on every backend.</summary>
public abstract partial class CredentialStoreContractTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.FromUnixTimeMilliseconds(1_780_000_000_000);

    private IAuditLog Audit => (IAuditLog)Store;

    private static AuditEntry Entry(int second, string credential = "anth", int status = 200, string? reason = null) =>
        new(T0.AddSeconds(second), "agent-a", credential, "/c/" + credential, "POST", "/c/" + credential + "/v1/messages", status, status == 401 ? null : status, 12 + second, reason, "host/1");

    [Fact]
    public async Task AuditAppendAsync_Entries_QueryReadsThemBackOldestFirstWithEveryField()
    {
        AuditEntry[] written = [Entry(2), Entry(1, "other", 401, "client_key_invalid") with { ClientKey = null }, Entry(3, status: 429, reason: "rate_limited")];

        await Audit.AppendAsync(written, default);
        var read = await Audit.QueryAsync(new AuditQuery(), default);

        Assert.Equal(written.OrderBy(e => e.At).Select(e => e with { Id = 0 }), read.Select(e => e with { Id = 0 }));
        Assert.All(read, e => Assert.True(e.Id > 0));
    }

    [Fact]
    public async Task AuditQueryAsync_SinceCredentialAndLimit_FilterAndKeepTheNewest()
    {
        await Audit.AppendAsync([.. Enumerable.Range(0, 10).Select(i => Entry(i, i % 2 == 0 ? "even" : "odd"))], default);

        var since = await Audit.QueryAsync(new AuditQuery(Since: T0.AddSeconds(7)), default);
        var odd = await Audit.QueryAsync(new AuditQuery(Credential: "odd"), default);
        var newestThree = await Audit.QueryAsync(new AuditQuery(Limit: 3), default);
        var both = await Audit.QueryAsync(new AuditQuery(T0.AddSeconds(4), "even", 2), default);

        Assert.Equal([7, 8, 9], since.Select(e => (int)(e.At - T0).TotalSeconds));
        Assert.Equal([1, 3, 5, 7, 9], odd.Select(e => (int)(e.At - T0).TotalSeconds));
        Assert.Equal([7, 8, 9], newestThree.Select(e => (int)(e.At - T0).TotalSeconds));
        Assert.Equal([6, 8], both.Select(e => (int)(e.At - T0).TotalSeconds));
    }

    [Fact]
    public async Task AuditAppendAsync_SameBatchAgainAfterALostAnswer_StoredOnce()
    {
        AuditEntry[] batch = [Entry(1), Entry(2)];

        await Audit.AppendAsync(batch, default);
        await Audit.AppendAsync([.. batch, Entry(3)], default);

        Assert.Equal(3, (await Audit.QueryAsync(new AuditQuery(), default)).Count);
    }

    [Fact]
    public async Task AuditPruneAsync_Cutoff_DeletesOnlyOlderEntries()
    {
        await Audit.AppendAsync([.. Enumerable.Range(0, 5).Select(i => Entry(i))], default);

        var pruned = await Audit.PruneAsync(T0.AddSeconds(3), default);
        var again = await Audit.PruneAsync(T0.AddSeconds(3), default);

        Assert.Equal(3, pruned);
        Assert.Equal(0, again);
        Assert.Equal([3, 4], (await Audit.QueryAsync(new AuditQuery(), default)).Select(e => (int)(e.At - T0).TotalSeconds));
    }

    [Fact]
    public async Task AuditAppendAsync_TwoInstances_EachSeesTheOthersEntriesAndTheyOutliveTheCredential()
    {
        await Store.CreateAsync(ApiKey("anth"), default);
        await using var other = await OpenAgainAsync();

        await Audit.AppendAsync([Entry(1)], default);
        await ((IAuditLog)other).AppendAsync([Entry(2)], default);
        await Store.RemoveAsync("anth", default);

        Assert.Equal(2, (await ((IAuditLog)other).QueryAsync(new AuditQuery(Credential: "anth"), default)).Count);
    }
}
