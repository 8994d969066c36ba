using System.Collections.Concurrent;
using Latchkey.Audit;
using Latchkey.Store;
using Latchkey.Usage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Audit;

/// <summary>
/// Usage rides in the audit writer's batches: the counts queued with entries are added up per day, key, credential
/// and model within a batch and handed to the store in the same call as the entries (no write of their own), and a
/// batch retried after a store failure carries them again.
/// </summary>
public sealed class AuditWriterUsageTests
{
    private static readonly DateOnly Day = new(2026, 3, 1);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task Record_EntriesWithUsage_OneStoreCallPerBatchWithTheUsageAddedUp()
    {
        var log = new RecordingLog();
        await using (var writer = new AuditWriter(log, TimeSpan.FromDays(30), _time, NullLogger.Instance))
        {
            writer.Record(Entry(), Count("a", "m1", 10));
            writer.Record(Entry(), Count("a", "m1", 5));
            writer.Record(Entry(), Count("b", "m1", 1));
            writer.Record(Entry()); // a request whose answer reported no usage
            await WaitUntilAsync(() => !log.Batches.IsEmpty || AdvanceLinger());
        }

        var (entries, usage) = Assert.Single(log.Batches);
        Assert.Equal(4, entries.Count);
        Assert.Equal([Count("a", "m1", 15) with { Requests = 2 }, Count("b", "m1", 1)], usage);
    }

    [Fact]
    public async Task Record_StoreUnavailableThenBack_TheRetriedBatchCarriesTheUsageOnce()
    {
        var log = new RecordingLog { FailuresLeft = 1 };
        await using (var writer = new AuditWriter(log, TimeSpan.FromDays(30), _time, NullLogger.Instance))
        {
            writer.Record(Entry(), Count("a", "m1", 7));
            await WaitUntilAsync(() => !log.Batches.IsEmpty || AdvanceLinger());
        }

        Assert.Equal(2, log.Calls); // one failure, one success
        var (_, usage) = Assert.Single(log.Batches);
        Assert.Equal([Count("a", "m1", 7)], usage);
    }

    private bool AdvanceLinger()
    {
        _time.Advance(TimeSpan.FromMilliseconds(100));
        return false;
    }

    /// <summary>
    /// Lets the writer (on the thread pool) run until <paramref name="condition"/> holds, moving the fake clock through
    /// the condition: no sleep, bounded by a real deadline so a broken writer fails the test instead of hanging it.
    /// </summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!condition() && deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Yield();
        }
    }

    private AuditEntry Entry() => new(_time.GetUtcNow(), "a", "anth", "/c/anth", "POST", "/c/anth/v1/messages", 200, 200, 1, null, "h/1");

    private static UsageCount Count(string key, string model, long input) => new(Day, key, "anth", model, 1, input, 2 * input, 0, 0)
    {
        OutputTokens = 2 * input,
    };

    private sealed class RecordingLog : IAuditLog
    {
        private int _calls;

        public ConcurrentQueue<(IReadOnlyList<AuditEntry> Entries, IReadOnlyList<UsageCount> Usage)> Batches { get; } = new();

        public int FailuresLeft { get; set; }

        public int Calls => Volatile.Read(ref _calls);

        public Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken) => AppendAsync(entries, [], cancellationToken);

        public Task AppendAsync(IReadOnlyList<AuditEntry> entries, IReadOnlyList<UsageCount> usage, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            if (FailuresLeft > 0)
            {
                FailuresLeft--;
                throw new StoreException("store_unavailable", "down", retryable: true);
            }

            Batches.Enqueue(([.. entries], [.. usage]));
            return Task.CompletedTask;
        }

        public Task<IReadOnlyList<AuditEntry>> QueryAsync(AuditQuery query, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<AuditEntry>>([]);

        public Task<long> PruneAsync(DateTimeOffset before, CancellationToken cancellationToken) => Task.FromResult(0L);
    }
}
