namespace Latchkey.Usage;

/// <summary>What usage is added up by, for <c>latchkey usage --by</c> and the dashboard.</summary>
internal enum UsageGrouping
{
    Key,
    Credential,
    Model,
}

/// <summary>
/// Adds up <c>usage_daily</c> rows (<see cref="IUsageLog.QueryUsageAsync"/>) by client key, credential or model, over
/// the whole period or per day. A group is a <see cref="UsageCount"/> whose other names are empty (and, over the
/// period, whose day is the period's first).
/// </summary>
internal static class UsageGroups
{
    /// <summary>The group's name: the key's, the credential's or the model's.</summary>
    public static string NameOf(UsageCount row, UsageGrouping by)
    {
        ArgumentNullException.ThrowIfNull(row);
        return by switch
        {
            UsageGrouping.Key => row.ClientKey,
            UsageGrouping.Credential => row.Credential,
            _ => row.Model,
        };
    }

    /// <summary>Totals per group over every day since <paramref name="since"/>: most tokens first, then by name.</summary>
    public static IReadOnlyList<UsageCount> Totals(IEnumerable<UsageCount> rows, UsageGrouping by, DateOnly since) =>
        [.. UsageCount.Aggregate(rows.Select(r => Only(r, by) with { Day = since }))
            .OrderByDescending(g => g.Tokens).ThenBy(g => NameOf(g, by), StringComparer.Ordinal)];

    /// <summary>Totals per day and group, by day then name.</summary>
    public static IReadOnlyList<UsageCount> PerDay(IEnumerable<UsageCount> rows, UsageGrouping by) =>
        UsageCount.Aggregate(rows.Select(r => Only(r, by)));

    /// <summary>Everything since <paramref name="since"/> in one count (every name empty).</summary>
    public static UsageCount Total(IEnumerable<UsageCount> rows, DateOnly since) =>
        rows.Aggregate(new UsageCount(since, string.Empty, string.Empty, string.Empty, 0, 0, 0, 0, 0), (sum, r) => sum.Add(r));

    private static UsageCount Only(UsageCount row, UsageGrouping by) => by switch
    {
        UsageGrouping.Key => row with { Credential = string.Empty, Model = string.Empty },
        UsageGrouping.Credential => row with { ClientKey = string.Empty, Model = string.Empty },
        _ => row with { ClientKey = string.Empty, Credential = string.Empty },
    };
}
