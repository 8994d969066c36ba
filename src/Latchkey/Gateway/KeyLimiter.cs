using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Latchkey.Store;
using Microsoft.Extensions.Logging;
using Latchkey.Usage;

namespace Latchkey.Gateway;

/// <summary>Why a request was refused for a key's limit: which limit, how long until it would pass, and what to tell the agent.</summary>
/// <param name="Limit"><c>rate</c>, <c>tokens</c> or <c>concurrent</c>.</param>
/// <param name="RetryAfter">How long until the request would pass (at least a second).</param>
/// <param name="Message">What happened, naming the key and the limit.</param>
/// <param name="Fix">What to do.</param>
internal sealed record KeyLimitRefusal(string Limit, TimeSpan RetryAfter, string Message, string Fix)
{
    public const string Rate = "rate";
    public const string Tokens = "tokens";
    public const string Concurrent = "concurrent";

    /// <summary>The reason code of every refusal for a key's limit.</summary>
    public const string Code = "key_limit_reached";

    /// <summary>Whole seconds for <c>retry-after</c>, rounded up, at least 1.</summary>
    public long RetryAfterSeconds => Math.Max(1, (long)Math.Ceiling(RetryAfter.TotalSeconds));
}

/// <summary>
/// Enforces a client key's limits (<see cref="ClientKeyLimits"/>) after its key check and before anything about the
/// request reaches the token engine or an upstream: the day's token budget, then the requests in flight, then the
/// rate. A request over a limit takes nothing from the others (a slot taken for it is given back).
/// </summary>
/// <remarks>
/// <para><b>Where it counts.</b> In <see cref="ILatchkeyStore.KeyLimits"/>: the shared store for a team's replicas on
/// PostgreSQL, this gateway's memory on SQLite (docs/operations.md says how exact each is).</para>
/// <para><b>Slots.</b> A request of a key with a concurrency limit holds a slot until its answer is done (streamed
/// answers included) or the agent goes away: the caller registers the slot for disposal with the request. In the
/// shared store a slot lapses after <see cref="SlotLifetime"/> unless renewed, so this gateway renews every slot it
/// holds every <see cref="RenewEvery"/>; a crashed replica's slots lapse by themselves.</para>
/// <para><b>Tokens.</b> The day's total so far (<see cref="IKeyTokenUsage"/>), reused for
/// <see cref="GatewayOptions.CacheTime"/> per key, is compared with the budget before sending; the answer's usage is
/// recorded by the usage part, so requests in flight when the budget runs out still finish.</para>
/// <para><b>Cost.</b> Nothing for a key without limits. Otherwise, in memory, a lock held for a few instructions; in
/// the shared store, one upsert for the rate, one short transaction to take a slot and one delete to give it back,
/// and one usage read per key per cache time.</para>
/// </remarks>
internal sealed partial class KeyLimiter : IDisposable
{
    /// <summary>How long a slot in the shared store lives without being renewed.</summary>
    public static readonly TimeSpan SlotLifetime = TimeSpan.FromSeconds(30);

    /// <summary>How often this gateway renews the slots it holds in the shared store.</summary>
    public static readonly TimeSpan RenewEvery = TimeSpan.FromSeconds(10);

    private const int MaxCachedUsage = 4096;

    private readonly IKeyLimitCounters _counters;
    private readonly IKeyTokenUsage _usage;
    private readonly TimeProvider _time;
    private readonly GatewayOptions _options;
    private readonly ILogger<KeyLimiter> _log;
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (DateOnly Day, long Used, DateTimeOffset Until)> _usageCache = new(StringComparer.Ordinal);
    private readonly ITimer? _renewal;

    /// <summary>
    /// A slot's id is this gateway's random prefix and a counter: unique across the replicas sharing a store without
    /// asking the random generator on every request.
    /// </summary>
    private readonly string _slotPrefix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)) + "-";
    private long _slotCount;
    private int _renewing;

    public KeyLimiter(ILatchkeyStore store, TimeProvider time, GatewayOptions options, ILogger<KeyLimiter> log)
        : this(store.KeyLimits, store, time, options, log)
    {
    }

    internal KeyLimiter(IKeyLimitCounters counters, IKeyTokenUsage usage, TimeProvider time, GatewayOptions options, ILogger<KeyLimiter> log)
    {
        _counters = counters;
        _usage = usage;
        _time = time;
        _options = options;
        _log = log;
        if (counters.Shared)
        {
            _renewal = time.CreateTimer(_ => _ = RenewAsync(), null, RenewEvery, RenewEvery);
        }
    }

    /// <summary>How many slots this gateway holds now (for tests and the log).</summary>
    public int SlotsHeld => _held.Count;

    /// <summary>
    /// Checks <paramref name="key"/>'s limits for one request. Either a refusal, or the slot the request holds (null
    /// when the key has no concurrency limit), which the caller disposes when the answer is done.
    /// </summary>
    /// <exception cref="StoreException">The store did not answer (the gateway answers 503, as for a key check).</exception>
    public async Task<(KeyLimitRefusal? Refusal, IAsyncDisposable? Slot)> EnterAsync(ClientKey key, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Limits is not { } limits)
        {
            return (null, null);
        }

        if (limits.TokensPerDay is { } budget && await TokensRefusalAsync(key.Name, budget, ct).ConfigureAwait(false) is { } overBudget)
        {
            return (overBudget, null);
        }

        Slot? slot = null;
        if (limits.Concurrent is { } most)
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"{_slotPrefix}{Interlocked.Increment(ref _slotCount)}");
            if (!await _counters.TryTakeSlotAsync(key.KeyId, most, id, SlotLifetime, ct).ConfigureAwait(false))
            {
                return (new KeyLimitRefusal(KeyLimitRefusal.Concurrent, TimeSpan.FromSeconds(1),
                    $"The client key '{key.Name}' already has {most.ToString(CultureInfo.InvariantCulture)} request(s) in flight, its limit; this one was not sent.",
                    $"Send it again when one of them has finished, or ask the gateway's owner to raise the limit: latchkey keys set {key.Name} --concurrent N"), null);
            }

            _held[id] = 0;
            slot = new Slot(this, key.KeyId, id);
        }

        if (limits.Rate is { } rate)
        {
            LimitDecision decision;
            try
            {
                decision = await _counters.TakeRequestAsync(key.KeyId, rate, ct).ConfigureAwait(false);
            }
            catch
            {
                await GiveBackAsync(slot).ConfigureAwait(false);
                throw;
            }

            if (!decision.Allowed)
            {
                await GiveBackAsync(slot).ConfigureAwait(false);
                var seconds = Math.Max(1, (long)Math.Ceiling(decision.RetryAfter.TotalSeconds));
                return (new KeyLimitRefusal(KeyLimitRefusal.Rate, decision.RetryAfter,
                    $"The client key '{key.Name}' has reached its rate limit of {rate}; this request was not sent. The next one may go in {seconds.ToString(CultureInfo.InvariantCulture)} s.",
                    $"Wait and send it again, or ask the gateway's owner to raise the limit: latchkey keys set {key.Name} --rate N/{Unit(rate)}"), null);
            }
        }

        return (null, slot);
    }

    public void Dispose() => _renewal?.Dispose();

    private static async Task GiveBackAsync(Slot? slot)
    {
        if (slot is not null)
        {
            await slot.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<KeyLimitRefusal?> TokensRefusalAsync(string name, long budget, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var day = DateOnly.FromDateTime(now.UtcDateTime);
        long used;
        if (_usageCache.TryGetValue(name, out var cached) && cached.Day == day && cached.Until > now)
        {
            used = cached.Used;
        }
        else
        {
            used = await _usage.TokensUsedAsync(name, day, ct).ConfigureAwait(false);
            if (_usageCache.Count >= MaxCachedUsage)
            {
                _usageCache.Clear();
            }

            _usageCache[name] = (day, used, now + _options.CacheTime);
        }

        if (used < budget)
        {
            return null;
        }

        var midnight = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var wait = midnight - now;
        return new KeyLimitRefusal(KeyLimitRefusal.Tokens, wait,
            $"The client key '{name}' has used its token budget for today ({used.ToString(CultureInfo.InvariantCulture)} of {budget.ToString(CultureInfo.InvariantCulture)} tokens on {day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)}, UTC); this request was not sent. The budget starts again at midnight UTC, in {Hours(wait)}.",
            $"Wait until then, or ask the gateway's owner to raise it: latchkey keys set {name} --tokens N/day");
    }

    /// <summary><c>5 h 12 min</c>, <c>12 min</c>, <c>under a minute</c>.</summary>
    private static string Hours(TimeSpan wait)
    {
        var minutes = (long)Math.Ceiling(wait.TotalMinutes);
        return minutes <= 0 ? "under a minute"
            : minutes < 60 ? $"{minutes.ToString(CultureInfo.InvariantCulture)} min"
            : $"{(minutes / 60).ToString(CultureInfo.InvariantCulture)} h {(minutes % 60).ToString(CultureInfo.InvariantCulture)} min";
    }

    private static string Unit(RateLimit rate)
    {
        var text = rate.ToString();
        return text[(text.IndexOf('/', StringComparison.Ordinal) + 1)..];
    }

    private async Task ReleaseAsync(string keyId, string id)
    {
        _held.TryRemove(id, out _);
        try
        {
            await _counters.ReleaseSlotAsync(keyId, id, CancellationToken.None).ConfigureAwait(false);
        }
        catch (StoreException ex)
        {
            SlotNotReleased(_log, ex.Code, (long)SlotLifetime.TotalSeconds);
        }
    }

    private async Task RenewAsync()
    {
        if (_held.IsEmpty || Interlocked.Exchange(ref _renewing, 1) == 1)
        {
            return;
        }

        try
        {
            await _counters.RenewSlotsAsync([.. _held.Keys], SlotLifetime, CancellationToken.None).ConfigureAwait(false);
        }
        catch (StoreException ex)
        {
            SlotsNotRenewed(_log, _held.Count, ex.Code);
        }
        finally
        {
            Volatile.Write(ref _renewing, 0);
        }
    }

    [LoggerMessage(41, LogLevel.Warning, "A request slot of a client key's concurrency limit was not given back ({Code}); it lapses in {Seconds} s")]
    private static partial void SlotNotReleased(ILogger logger, string code, long seconds);

    [LoggerMessage(42, LogLevel.Warning, "{Count} request slot(s) of client keys' concurrency limits were not renewed ({Code}); they lapse unless the next renewal works")]
    private static partial void SlotsNotRenewed(ILogger logger, int count, string code);

    /// <summary>One request's slot: given back once, when the request's answer is done.</summary>
    private sealed class Slot(KeyLimiter limiter, string keyId, string id) : IAsyncDisposable
    {
        private int _released;

        public ValueTask DisposeAsync() =>
            Interlocked.Exchange(ref _released, 1) == 0 ? new ValueTask(limiter.ReleaseAsync(keyId, id)) : ValueTask.CompletedTask;
    }
}
