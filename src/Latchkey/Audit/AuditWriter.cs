using System.Threading.Channels;
using Latchkey.Store;
using Microsoft.Extensions.Logging;

namespace Latchkey.Audit;

/// <summary>
/// Takes audit entries off the request path: <see cref="Record"/> only queues (a bounded channel, never waits),
/// and one background task writes them to the store in batches. Another task prunes entries older than the
/// retention, at start and then every <see cref="PruneInterval"/>.
/// </summary>
/// <remarks>
/// <para><b>Store unavailable.</b> A batch that fails with a retryable error (PostgreSQL restarting, SQLite busy)
/// is kept and tried again with backoff (0.1 s doubling to 2 s) until it is written; entries go on queueing
/// meanwhile. Appends are idempotent (each entry has a random id), so a batch whose commit answer was lost is not
/// written twice. A non-retryable error loses that batch, and says so in the log.</para>
/// <para><b>Full queue.</b> When <see cref="Capacity"/> entries are waiting, new ones are dropped and counted
/// (<see cref="Dropped"/>, logged), rather than slowing requests down.</para>
/// <para><b>Shutdown.</b> <see cref="DisposeAsync"/> (after the gateway stopped taking requests) writes everything
/// queued, waiting up to <see cref="ShutdownBudget"/> for an unavailable store; whatever is still unwritten then is
/// counted in the log. A <c>kill -9</c> loses what was queued and not yet committed: normally the entries of the
/// last few milliseconds, at most <see cref="Capacity"/> while the store was unavailable.</para>
/// <para>Thread-safe: <see cref="Record"/> may be called from any number of threads.</para>
/// </remarks>
internal sealed partial class AuditWriter : IAsyncDisposable
{
    public const int Capacity = 10_000;

    public static readonly TimeSpan ShutdownBudget = TimeSpan.FromSeconds(10);

    private const int BatchSize = 500;

    /// <summary>How long the writer waits after the first queued entry for more, before writing them as one batch.</summary>
    public static readonly TimeSpan BatchLinger = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);

    private readonly IAuditLog _log;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<AuditEntry> _queue;
    private readonly CancellationTokenSource _stopPruning = new();
    private readonly CancellationTokenSource _abandon = new();
    private readonly Task _writer;
    private readonly Task _pruner;
    private long _dropped;
    private long _written;
    private long _lost;
    private int _disposed;

    public AuditWriter(IAuditLog log, TimeSpan retention, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(retention, TimeSpan.Zero);
        _log = log;
        _time = time;
        _logger = logger;
        Retention = retention;
        PruneInterval = TimeSpan.FromTicks(Math.Clamp(retention.Ticks / 10, TimeSpan.FromMilliseconds(500).Ticks, TimeSpan.FromHours(1).Ticks));
        _queue = Channel.CreateBounded<AuditEntry>(
            new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true, SingleWriter = false },
            _ => Interlocked.Increment(ref _dropped));
        _writer = Task.Run(WriteLoopAsync);
        _pruner = Task.Run(PruneLoopAsync);
    }

    /// <summary>Entries older than this are deleted.</summary>
    public TimeSpan Retention { get; }

    /// <summary>How often the retention is applied: a tenth of it, between 0.5 s and 1 h.</summary>
    public TimeSpan PruneInterval { get; }

    /// <summary>This process, as entries name it: <c>host/pid</c>.</summary>
    public static string Replica { get; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Written => Interlocked.Read(ref _written);

    /// <summary>Queues an entry; never blocks. Dropped (and counted) when the queue is full or the writer stopped.</summary>
    public void Record(AuditEntry entry)
    {
        if (!_queue.Writer.TryWrite(entry))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

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
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<AuditEntry>(BatchSize);
        long droppedReported = 0;
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            // Linger before writing, so a steady stream of requests becomes a few fsync'd transactions a second
            // rather than up to one per request (the inserts were about 5 % of the gateway's CPU at 32
            // connections: docs/benchmarks.md). Skipped when the queue is closing: shutdown writes at once.
            if (_queue.Reader.Count < BatchSize && Volatile.Read(ref _disposed) == 0)
            {
                await Task.Delay(BatchLinger, _time).ConfigureAwait(false);
            }

            while (batch.Count < BatchSize && _queue.Reader.TryRead(out var entry))
            {
                batch.Add(entry);
            }

            await WriteAsync(batch).ConfigureAwait(false);
            batch.Clear();
            if (Dropped is var dropped && dropped > droppedReported)
            {
                AuditLogMessages.Dropped(_logger, dropped - droppedReported, Capacity);
                droppedReported = dropped;
            }
        }
    }

    private async Task WriteAsync(List<AuditEntry> batch)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        var failing = false;
        while (true)
        {
            try
            {
                await _log.AppendAsync(batch, CancellationToken.None).ConfigureAwait(false);
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
}
