using System.Threading.Channels;
using Latchkey.Store;
using Latchkey.Telemetry;
using Latchkey.Usage;
using Microsoft.Extensions.Logging;

namespace Latchkey.Audit;

/// <summary>
/// Takes audit entries, and the token usage their answers reported, off the request path: <see cref="Record"/> only
/// queues (a bounded channel, never waits), and one background task writes them to the store in batches, each batch's
/// usage added up per day, key, credential and model and written in the same transaction as its entries. Another task prunes entries older than the
/// retention, at start and then every <see cref="PruneInterval"/>.
/// </summary>
/// <remarks>
/// <para><b>Store unavailable.</b> A batch that fails with a retryable error (PostgreSQL restarting, SQLite busy)
/// is kept and tried again with backoff (0.1 s doubling to 2 s) until it is written; entries go on queueing
/// meanwhile. Appends are idempotent (each entry has a random id), so a batch whose commit answer was lost is not
/// written twice. A non-retryable error loses that batch, and says so in the log.</para>
/// <para><b>Full queue.</b> When <see cref="Capacity"/> entries are waiting, new ones are dropped and counted
/// (<see cref="Dropped"/>, logged), rather than slowing requests down. How many wait is reported as the gauge
/// <c>latchkey.audit.queue.depth</c> (<see cref="LatchkeyTelemetry.ObserveAuditQueue"/>) while the writer lives.</para>
/// <para><b>Refused requests have their own budget.</b> Entries of requests the gateway refused before a valid key
/// allowed them (<see cref="RecordRefused"/>) pass a token bucket per source and one for all sources (<see cref="RefusedEntryLimiter"/>) and
/// wait in their own share of the queue (<see cref="RefusedCapacity"/>), so a flood of them is mostly not recorded
/// and never takes the place of a served request's entry. What was not recorded is written as summary entries every
/// <see cref="SummaryInterval"/> (and at shutdown), at most <see cref="RefusedEntryLimiter.MaxSummaries"/>, one per
/// source (the smaller ones added up as <see cref="RefusedEntryLimiter.OtherSources"/>): reason <c>refused_not_recorded</c>, path
/// "N refused requests from SOURCE not recorded".</para>
/// <para><b>Shutdown.</b> <see cref="DisposeAsync"/> (after the gateway stopped taking requests) writes everything
/// queued, waiting up to <see cref="ShutdownBudget"/> for an unavailable store; whatever is still unwritten then is
/// counted in the log. A <c>kill -9</c> loses what was queued and not yet committed: normally the entries of the
/// last few milliseconds, at most <see cref="Capacity"/> while the store was unavailable.</para>
/// <para>Thread-safe: <see cref="Record"/> may be called from any number of threads.</para>
/// </remarks>
internal sealed partial class AuditWriter : IAsyncDisposable
{
    public const int Capacity = 10_000;

    /// <summary>How many entries of refused requests may wait at once, apart from <see cref="Capacity"/>.</summary>
    public const int RefusedCapacity = 1_000;

    /// <summary>The reason code of the summary entry that counts a source's refused requests not recorded.</summary>
    public const string RefusedNotRecorded = "refused_not_recorded";

    /// <summary>How often sources with refused requests not recorded get their summary entry.</summary>
    public static readonly TimeSpan SummaryInterval = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan ShutdownBudget = TimeSpan.FromSeconds(10);

    private const int BatchSize = 500;

    /// <summary>How long the writer waits after the first queued entry for more, before writing them as one batch.</summary>
    public static readonly TimeSpan BatchLinger = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    private readonly IAuditLog _log;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<Queued> _queue;
    private readonly RefusedEntryLimiter _refusedLimiter;
    private readonly ITimer _summaries;
    private readonly CancellationTokenSource _stopPruning = new();
    private readonly CancellationTokenSource _abandon = new();
    private readonly Task _writer;
    private readonly Task _pruner;
    private readonly IDisposable _depthGauge;
    private int _servedWaiting;
    private int _refusedWaiting;
    private long _dropped;
    private long _written;
    private long _lost;
    private int _disposed;

    public AuditWriter(IAuditLog log, TimeSpan retention, TimeProvider time, ILogger logger, RefusedEntryLimiter? refusedLimiter = null)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(retention, TimeSpan.Zero);
        _log = log;
        _time = time;
        _logger = logger;
        Retention = retention;
        PruneInterval = TimeSpan.FromTicks(Math.Clamp(retention.Ticks / 10, TimeSpan.FromMilliseconds(500).Ticks, TimeSpan.FromHours(1).Ticks));
        // Unbounded as a channel; bounded by the two budgets Record and RecordRefused keep.
        _queue = Channel.CreateUnbounded<Queued>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
        _refusedLimiter = refusedLimiter ?? new RefusedEntryLimiter(time);
        _summaries = time.CreateTimer(_ => RecordSummaries(), null, SummaryInterval, SummaryInterval);
        _writer = Task.Run(WriteLoopAsync);
        _pruner = Task.Run(PruneLoopAsync);
        _depthGauge = LatchkeyTelemetry.ObserveAuditQueue(() => Volatile.Read(ref _servedWaiting) + Volatile.Read(ref _refusedWaiting));
    }

    /// <summary>Entries older than this are deleted.</summary>
    public TimeSpan Retention { get; }

    /// <summary>How often the retention is applied: a tenth of it, between 0.5 s and 1 h.</summary>
    public TimeSpan PruneInterval { get; }

    /// <summary>This process, as entries name it: <c>host/pid</c>.</summary>
    public static string Replica { get; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Written => Interlocked.Read(ref _written);

    /// <summary>
    /// Queues an entry, with the token usage its answer reported (added up per day, key, credential and model within
    /// the batch and written in the entries' transaction: no write of its own); never blocks. Dropped (and counted),
    /// usage included, when the queue is full or the writer stopped.
    /// </summary>
    public void Record(AuditEntry entry, UsageCount? usage = null)
    {
        if (Interlocked.Increment(ref _servedWaiting) > Capacity || !_queue.Writer.TryWrite(new Queued(entry, usage, Refused: false)))
        {
            Interlocked.Decrement(ref _servedWaiting);
            Interlocked.Increment(ref _dropped);
        }
    }

    /// <summary>
    /// Queues the entry of a request the gateway refused (no valid key allowed it), if <paramref name="source"/>'s
    /// budget has room; otherwise it is only counted, for the source's summary entry. Never blocks, and never
    /// takes room from <see cref="Record"/>.
    /// </summary>
    public void RecordRefused(AuditEntry entry, string source)
    {
        if (!_refusedLimiter.TryTake(source))
        {
            return;
        }

        if (Interlocked.Increment(ref _refusedWaiting) > RefusedCapacity || !_queue.Writer.TryWrite(new Queued(entry, null, Refused: true)))
        {
            Interlocked.Decrement(ref _refusedWaiting);
            _refusedLimiter.CountDropped(source);
        }
    }

    /// <summary>Queues one summary entry per source (at most a few; see <see cref="RefusedEntryLimiter.TakeDropped"/>) whose refused requests were not recorded since the last summary.</summary>
    private void RecordSummaries()
    {
        foreach (var (source, count) in _refusedLimiter.TakeDropped())
        {
            AuditLogMessages.RefusedNotRecorded(_logger, count, source);
            Record(new AuditEntry(_time.GetUtcNow(), null, null, "(audit)", "-", $"{count} refused requests from {source} not recorded", 0, null, 0, RefusedNotRecorded, Replica));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _summaries.DisposeAsync().ConfigureAwait(false);
        RecordSummaries();
        _queue.Writer.TryComplete();
        await _stopPruning.CancelAsync().ConfigureAwait(false);
        _abandon.CancelAfter(ShutdownBudget);
        try
        {
            await Task.WhenAll(_writer, _pruner).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        if (Interlocked.Read(ref _lost) + Dropped > 0)
        {
            AuditLogMessages.Lost(_logger, Interlocked.Read(ref _lost), Dropped);
        }

        _stopPruning.Dispose();
        _abandon.Dispose();
        _depthGauge.Dispose();
    }

    /// <summary>An entry waiting to be written, the usage it carries, and which budget it counts against.</summary>
    private readonly record struct Queued(AuditEntry Entry, UsageCount? Usage, bool Refused);

    private async Task WriteLoopAsync()
    {
        var batch = new List<AuditEntry>(BatchSize);
        var usage = new List<UsageCount>();
        long droppedReported = 0;
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            // Linger before writing, so a steady stream of requests becomes a few fsync'd transactions a second
            // rather than up to one per request (the inserts were about 5 % of the gateway's CPU at 32
            // connections: docs/benchmarks.md). Skipped when the queue is closing: shutdown writes at once.
            if (Volatile.Read(ref _servedWaiting) + Volatile.Read(ref _refusedWaiting) < BatchSize && Volatile.Read(ref _disposed) == 0)
            {
                await Task.Delay(BatchLinger, _time).ConfigureAwait(false);
            }

            while (batch.Count < BatchSize && _queue.Reader.TryRead(out var queued))
            {
                Interlocked.Decrement(ref queued.Refused ? ref _refusedWaiting : ref _servedWaiting);
                batch.Add(queued.Entry);
                if (queued.Usage is { } counted)
                {
                    usage.Add(counted);
                }
            }

            await WriteAsync(batch, usage.Count == 0 ? [] : UsageCount.Aggregate(usage)).ConfigureAwait(false);
            batch.Clear();
            usage.Clear();
            if (Dropped is var dropped && dropped > droppedReported)
            {
                AuditLogMessages.Dropped(_logger, dropped - droppedReported, Capacity);
                droppedReported = dropped;
            }
        }
    }

    private async Task WriteAsync(List<AuditEntry> batch, IReadOnlyList<UsageCount> usage)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        var failing = false;
        while (true)
        {
            try
            {
                await _log.AppendAsync(batch, usage, CancellationToken.None).ConfigureAwait(false);
                Interlocked.Add(ref _written, batch.Count);
                if (failing)
                {
                    AuditLogMessages.Resumed(_logger, batch.Count);
                }

                return;
            }
            catch (StoreException ex) when (ex.Retryable && !_abandon.IsCancellationRequested)
            {
                if (!failing)
                {
                    AuditLogMessages.Waiting(_logger, ex.Code, batch.Count);
                    failing = true;
                }

                try
                {
                    await Task.Delay(backoff, _time, _abandon.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // shutting down and the budget is spent: counted below on the next failure
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
            catch (StoreException ex)
            {
                Interlocked.Add(ref _lost, batch.Count);
                AuditLogMessages.Failed(_logger, ex.Code, batch.Count, ex.Message);
                return;
            }
        }
    }

    private async Task PruneLoopAsync()
    {
        var token = _stopPruning.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var pruned = await _log.PruneAsync(_time.GetUtcNow() - Retention, token).ConfigureAwait(false);
                if (pruned > 0)
                {
                    AuditLogMessages.Pruned(_logger, pruned, Retention);
                }
            }
            catch (StoreException ex)
            {
                AuditLogMessages.PruneFailed(_logger, ex.Code);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                await Task.Delay(PruneInterval, _time, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}

/// <summary>The audit writer's log lines: counts and codes only.</summary>
internal static partial class AuditLogMessages
{
    [LoggerMessage(101, LogLevel.Warning, "Audit: the store is unavailable ({Code}); {Count} entries wait and are retried")]
    public static partial void Waiting(ILogger logger, string code, int count);

    [LoggerMessage(102, LogLevel.Information, "Audit: the store is back; {Count} waiting entries written")]
    public static partial void Resumed(ILogger logger, int count);

    [LoggerMessage(103, LogLevel.Error, "Audit: {Count} entries could not be written ({Code}): {Message}")]
    public static partial void Failed(ILogger logger, string code, int count, string message);

    [LoggerMessage(104, LogLevel.Warning, "Audit: {Count} entries dropped because {Capacity} were already waiting")]
    public static partial void Dropped(ILogger logger, long count, int capacity);

    [LoggerMessage(105, LogLevel.Information, "Audit: pruned {Count} entries older than {Retention}")]
    public static partial void Pruned(ILogger logger, long count, TimeSpan retention);

    [LoggerMessage(106, LogLevel.Warning, "Audit: pruning failed ({Code}); tried again later")]
    public static partial void PruneFailed(ILogger logger, string code);

    [LoggerMessage(107, LogLevel.Error, "Audit: stopped with {Lost} entries unwritten and {Dropped} dropped")]
    public static partial void Lost(ILogger logger, long lost, long dropped);

    [LoggerMessage(108, LogLevel.Warning, "Audit: {Count} refused requests from {Source} not recorded (over the budget of refused entries); one summary entry written")]
    public static partial void RefusedNotRecorded(ILogger logger, long count, string source);
}
