using Latchkey.Audit;
using Latchkey.Store;
using Latchkey.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;

namespace Latchkey.Tests.Telemetry;

/// <summary>The instruments the store and the audit writer record on, seen by a listener as an exporter sees them.</summary>
public sealed class LatchkeyTelemetryTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Theory]
    [InlineData("GetAsync", "get")]
    [InlineData("VerifyKeyAsync", "verify_key")]
    [InlineData("TryAcquireLeaseAsync", "try_acquire_lease")]
    [InlineData("AppendAsync", "append")]
    [InlineData("Get", "get")]
    public void OperationName_StoreMethodName_SnakeCaseWithoutAsync(string member, string expected) =>
        Assert.Equal(expected, LatchkeyTelemetry.OperationName(member));

    [Fact]
    public void Status_SameCodeTwice_TheSameBoxedValueSoRecordingAllocatesNothing()
    {
        Assert.Same(LatchkeyTelemetry.Status(200), LatchkeyTelemetry.Status(200));
        Assert.Equal(503, LatchkeyTelemetry.Status(503));
        Assert.Equal(1000, LatchkeyTelemetry.Status(1000));
    }

    [Fact]
    public async Task StoreOperations_OnSqlite_EachRecordedWithBackendAndOperation()
    {
        using var capture = new MetricCapture("latchkey.store.operation.duration");
        await using var store = SqliteCredentialStore.Open(_home.Home, TimeProvider.System);

        await store.CreateAsync(new NewCredential("timed", CredentialKind.ApiKey, new CredentialMetadata { Upstream = "https://api.example.com" }, new CredentialSecrets { ApiKey = "sk-timed" }), default);
        await store.GetAsync("timed", default);
        await store.GetAsync("timed", default);
        await store.VerifyKeyAsync("lk_abcdefghijkl_" + new string('A', 43), default);

        var recorded = capture.Measurements.ToList();
        Assert.Equal(2, recorded.Count(m => Equals(m.Tags["operation"], "get")));
        Assert.Single(recorded, m => Equals(m.Tags["operation"], "create"));
        Assert.Single(recorded, m => Equals(m.Tags["operation"], "verify_key"));
        Assert.All(recorded, m => Assert.Equal("sqlite", m.Tags["backend"]));
        Assert.All(recorded, m => Assert.InRange(m.Value, 0, 60));
        Assert.DoesNotContain(recorded, m => m.Tags.Values.Any(v => v is string s && s.Contains("sk-timed", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task AuditQueueDepth_EntriesWaitingWhileABatchIsWritten_GaugeReportsThemAndStopsWithTheWriter()
    {
        using var capture = new MetricCapture("latchkey.audit.queue.depth");
        var log = new HeldAuditLog();
        var writer = new AuditWriter(log, TimeSpan.FromDays(1), TimeProvider.System, NullLogger.Instance);
        writer.Record(Entry());
        await log.Writing.Task.WaitAsync(TimeSpan.FromSeconds(30)); // the first batch is being written, and is held there
        for (var i = 0; i < 3; i++)
        {
            writer.Record(Entry());
        }

        capture.Observe();
        var waiting = capture.Measurements.Last().Value;
        log.Release.SetResult();
        await writer.DisposeAsync(); // writes what is queued, and stops being reported
        var reported = capture.Measurements.Count;
        capture.Observe();

        Assert.Equal(3, waiting);
        Assert.Equal(reported, capture.Measurements.Count);
        Assert.Equal(4, writer.Written);
    }

    private static AuditEntry Entry() => new(DateTimeOffset.UtcNow, "agent", "c", "/c/c", "GET", "/c/c/x", 200, 200, 1, null, AuditWriter.Replica);

    /// <summary>An audit log whose first append waits until <see cref="Release"/> (so entries queue up behind it).</summary>
    private sealed class HeldAuditLog : IAuditLog
    {
        public TaskCompletionSource Writing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task AppendAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
        {
            Writing.TrySetResult();
            await Release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }

        public Task AppendAsync(IReadOnlyList<AuditEntry> entries, IReadOnlyList<Latchkey.Usage.UsageCount> usage, CancellationToken cancellationToken) =>
            AppendAsync(entries, cancellationToken);

        public Task<IReadOnlyList<AuditEntry>> QueryAsync(AuditQuery query, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<AuditEntry>>([]);

        public Task<long> PruneAsync(DateTimeOffset before, CancellationToken cancellationToken) => Task.FromResult(0L);
    }
}
