using System.Data.Common;
using System.Globalization;

namespace Latchkey.Store;

/// <summary>
/// The limits of client keys counted in the store, for gateways that share it (<see cref="IKeyLimitCounters"/>): the
/// same statements on both backends, with the backend's own <see cref="Greatest"/> and <see cref="LimitNow"/>.
/// </summary>
/// <remarks>
/// <para><b>Rate</b> (<see cref="TakeRequestAsync"/>): one upsert per request on the key's <c>key_limit_state</c> row,
/// the GCRA step of <see cref="KeyLimitMath.Take"/> written in SQL: it moves <c>rate_tat</c> only when the request is
/// let through and returns nothing when it is not (then a read says how long until it would be). Exact across
/// replicas: the row is updated under its lock, one request after another.</para>
/// <para><b>Concurrency</b> (<see cref="TryTakeSlotAsync"/>): one transaction that locks the key's
/// <c>key_limit_state</c> row (an upsert), drops the key's expired leases, and inserts the new lease only when fewer
/// than the limit remain. Exact across replicas, except that a crashed replica's leases count until they expire.</para>
/// </remarks>
internal abstract partial class CredentialStore : IKeyLimitCounters
{
    /// <summary>
    /// Where this store's gateway counts the limits of client keys: the store itself (this instance) unless the
    /// backend says only one gateway can use it (<see cref="SqliteCredentialStore"/> counts in memory).
    /// </summary>
    public virtual IKeyLimitCounters KeyLimits => this;

    bool IKeyLimitCounters.Shared => true;

    /// <summary>The larger of two values, as a SQL function name (<c>max</c> on SQLite, <c>GREATEST</c> on PostgreSQL).</summary>
    private protected abstract string Greatest { get; }

    /// <summary>
    /// "Now" in unix microseconds for the limit counters, as a SQL expression that is the same wherever a statement
    /// uses it: <c>@now_us</c> (bound from this process's <see cref="TimeProvider"/>) or the database's statement time,
    /// so that every replica counts on one clock.
    /// </summary>
    private protected abstract string LimitNow { get; }

    public Task<LimitDecision> TakeRequestAsync(string keyId, RateLimit rate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        var interval = KeyLimitMath.IntervalMicros(rate);
        var capacity = KeyLimitMath.CapacityMicros(rate);
        return RunAsync(async (connection, ct) =>
        {
            var start = $"{Greatest}(coalesce(key_limit_state.rate_tat, 0), {LimitNow})";
            await using (var take = BindNow(connection.Command(null,
                $"""
                INSERT INTO key_limit_state (key_id, rate_tat) VALUES (@key, {LimitNow} + @interval)
                ON CONFLICT (key_id) DO UPDATE SET rate_tat = {start} + @interval
                WHERE {start} + @interval - {LimitNow} <= @capacity
                RETURNING rate_tat
                """))
                .Bind("@key", keyId).Bind("@interval", interval).Bind("@capacity", capacity))
            {
                if (await take.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null and not DBNull)
                {
                    return LimitDecision.Allow;
                }
            }

            // Refused, and nothing was changed: how far over its capacity the bucket is now.
            await using var read = BindNow(connection.Command(null,
                $"SELECT {Greatest}(coalesce(rate_tat, 0), {LimitNow}) + @interval - {LimitNow} - @capacity FROM key_limit_state WHERE key_id = @key"))
                .Bind("@key", keyId).Bind("@interval", interval).Bind("@capacity", capacity);
            var over = await read.ExecuteScalarAsync(ct).ConfigureAwait(false) is { } value and not DBNull ? Convert.ToInt64(value, CultureInfo.InvariantCulture) : 0;
            return new LimitDecision(false, KeyLimitMath.RetryAfter(over));
        }, idempotent: false, cancellationToken);
    }

    public Task<bool> TryTakeSlotAsync(string keyId, int limit, string leaseId, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(leaseId);
        return RunAsync(async (connection, ct) =>
        {
            await using var transaction = await BeginWriteAsync(connection, ct).ConfigureAwait(false);

            // The key's row, locked until commit: every replica's check for this key waits here, one after another.
            await using (var gate = connection.Command(transaction,
                "INSERT INTO key_limit_state (key_id) VALUES (@key) ON CONFLICT (key_id) DO UPDATE SET rate_tat = key_limit_state.rate_tat").Bind("@key", keyId))
            {
                await gate.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await using (var expired = BindNow(connection.Command(transaction, $"DELETE FROM key_lease WHERE key_id = @key AND expires_at <= {LimitNow}")).Bind("@key", keyId))
            {
                await expired.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            int taken;
            await using (var insert = BindNow(connection.Command(transaction,
                $"""
                INSERT INTO key_lease (lease_id, key_id, expires_at)
                SELECT @lease, @key, {LimitNow} + @lifetime WHERE (SELECT count(*) FROM key_lease WHERE key_id = @key) < @limit
                """))
                .Bind("@lease", leaseId).Bind("@key", keyId).Bind("@lifetime", Micros(lifetime)).Bind("@limit", limit))
            {
                taken = await insert.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await transaction.CommitAsync(ct).ConfigureAwait(false);
            return taken == 1;
        }, idempotent: false, cancellationToken);
    }

    public Task ReleaseSlotAsync(string keyId, string leaseId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leaseId);
        return RunAsync(async (connection, ct) =>
        {
            await using var command = connection.Command(null, "DELETE FROM key_lease WHERE lease_id = @lease").Bind("@lease", leaseId);
            return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }, idempotent: true, cancellationToken);
    }

    public Task RenewSlotsAsync(IReadOnlyCollection<string> leaseIds, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leaseIds);
        if (leaseIds.Count == 0)
        {
            return Task.CompletedTask;
        }

        return RunAsync(async (connection, ct) =>
        {
            // In chunks of bound parameters, valid in both dialects (SQLite has no arrays).
            foreach (var chunk in leaseIds.Chunk(100))
            {
                var names = chunk.Select((_, i) => "@l" + i.ToString(CultureInfo.InvariantCulture)).ToList();
                await using var command = BindNow(connection.Command(null,
                    $"UPDATE key_lease SET expires_at = {LimitNow} + @lifetime WHERE lease_id IN ({string.Join(", ", names)})")).Bind("@lifetime", Micros(lifetime));
                for (var i = 0; i < chunk.Length; i++)
                {
                    command.Bind(names[i], chunk[i]);
                }

                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            return 0;
        }, idempotent: true, cancellationToken);
    }

    private DbCommand BindNow(DbCommand command) => command.Bind("@now_us", KeyLimitMath.Micros(Time.GetUtcNow()));

    private static long Micros(TimeSpan span) => span.Ticks / TimeSpan.TicksPerMicrosecond;
}
