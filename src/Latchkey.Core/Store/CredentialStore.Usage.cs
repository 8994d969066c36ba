using System.Data.Common;
using Latchkey.Usage;

namespace Latchkey.Store;

/// <summary>
/// Token usage (<see cref="IUsageLog"/>), in the same database as the credentials and the audit log. Adding counts is
/// the backend's own, together with the audit batch they ride in (<see cref="AppendAsync(IReadOnlyList{Audit.AuditEntry}, IReadOnlyList{UsageCount}, CancellationToken)"/>);
/// reading them is shared.
/// </summary>
internal abstract partial class CredentialStore
{
    /// <summary>The columns <see cref="ReadUsage"/> reads, in its order.</summary>
    private protected const string UsageColumns = "day, client_key, credential, model, requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens";

    /// <summary>
    /// The upsert of one <c>usage_daily</c> row, for a statement whose values come first in <see cref="UsageColumns"/>'s
    /// order: every counter is added, saturating at <see cref="long.MaxValue"/> (a sum past it would be an error on both
    /// backends and lose the whole batch).
    /// </summary>
    private protected static readonly string UsageUpsert =
        "ON CONFLICT (day, client_key, credential, model) DO UPDATE SET " + string.Join(", ",
            new[] { "requests", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens" }.Select(c =>
                $"{c} = CASE WHEN usage_daily.{c} > 9223372036854775807 - excluded.{c} THEN 9223372036854775807 ELSE usage_daily.{c} + excluded.{c} END"));

    public Task AddUsageAsync(IReadOnlyList<UsageCount> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return AppendAsync([], batch, cancellationToken);
    }

    public Task<long> TokensUsedAsync(string clientKey, DateOnly day, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(clientKey);
        return RunAsync(async (connection, ct) =>
        {
            // Added up here, not with SQL's sum(): SQLite's fails on an overflow, and every count is already saturated.
            await using var command = connection.Command(null,
                "SELECT input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens FROM usage_daily WHERE day = @day AND client_key = @key")
                .Bind("@day", UsageCount.DayText(day)).Bind("@key", clientKey);
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var total = 0L;
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                for (var i = 0; i < 4; i++)
                {
                    total = UsageCount.Sum(total, reader.GetInt64(i));
                }
            }

            return total;
        }, idempotent: true, cancellationToken);
    }

    public Task<IReadOnlyList<UsageCount>> QueryUsageAsync(DateOnly since, CancellationToken cancellationToken) =>
        RunAsync<IReadOnlyList<UsageCount>>(async (connection, ct) =>
        {
            await using var command = connection.Command(null,
                $"SELECT {UsageColumns} FROM usage_daily WHERE day >= @since ORDER BY day, client_key, credential, model")
                .Bind("@since", UsageCount.DayText(since));
            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var rows = new List<UsageCount>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                rows.Add(ReadUsage(reader));
            }

            // The database's text order may not be ordinal (PostgreSQL's collation): the contract's order is.
            return UsageCount.Aggregate(rows);
        }, idempotent: true, cancellationToken);

    private static UsageCount ReadUsage(DbDataReader r) => new(
        UsageCount.ParseDay(r.GetString(0)), r.GetString(1), r.GetString(2), r.GetString(3),
        r.GetInt64(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7), r.GetInt64(8));
}
