using System.Globalization;

namespace Latchkey.Usage;

/// <summary>
/// Tokens the providers counted in their answers, added up for one UTC day, client key, credential and model (one
/// <c>usage_daily</c> row, or one answer's share of it). Never a secret: the client key by its name only.
/// </summary>
/// <param name="Day">The UTC day the requests arrived on.</param>
/// <param name="ClientKey">The client key's name; empty when the request needed none (the local Unix socket).</param>
/// <param name="Credential">The credential that served.</param>
/// <param name="Model">The model the answer named (else the request's); empty when neither did.</param>
/// <param name="Requests">How many answers carried a usage count.</param>
/// <param name="InputTokens">Input tokens not read from or written to a prompt cache.</param>
/// <param name="OutputTokens">Output tokens.</param>
/// <param name="CacheCreationTokens">Input tokens written to a prompt cache (Anthropic's <c>cache_creation_input_tokens</c>).</param>
/// <param name="CacheReadTokens">Input tokens read from a prompt cache (Anthropic's <c>cache_read_input_tokens</c>, OpenAI's <c>cached_tokens</c>).</param>
/// <remarks>The four token counts do not overlap: their sum (<see cref="Tokens"/>) is every token the answer was counted for.
/// Every count is at least 0; sums saturate at <see cref="long.MaxValue"/> rather than overflow.</remarks>
internal sealed record UsageCount(
    DateOnly Day, string ClientKey, string Credential, string Model,
    long Requests, long InputTokens, long OutputTokens, long CacheCreationTokens, long CacheReadTokens)
{
    /// <summary>The most characters of <see cref="ClientKey"/>, <see cref="Credential"/> and <see cref="Model"/> kept.</summary>
    public const int MaxNameLength = 128;

    private readonly string _clientKey = Cut(ClientKey);
    private readonly string _credential = Cut(Credential);
    private readonly string _model = Cut(Model);

    public string ClientKey { get => _clientKey; init => _clientKey = Cut(value); }

    public string Credential { get => _credential; init => _credential = Cut(value); }

    public string Model { get => _model; init => _model = Cut(value); }

    /// <summary>Input, output, cache creation and cache read tokens together (saturating).</summary>
    public long Tokens => Sum(Sum(InputTokens, OutputTokens), Sum(CacheCreationTokens, CacheReadTokens));

    /// <summary>The day as both backends store it: <c>yyyy-MM-dd</c>.</summary>
    public static string DayText(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    /// <summary>Reads <see cref="DayText"/>'s form back.</summary>
    public static DateOnly ParseDay(string text) => DateOnly.ParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture);

    /// <summary><paramref name="a"/> + <paramref name="b"/> for counts (negative ones count as 0), saturating at <see cref="long.MaxValue"/>.</summary>
    public static long Sum(long a, long b)
    {
        a = Math.Max(0, a);
        b = Math.Max(0, b);
        return a > long.MaxValue - b ? long.MaxValue : a + b;
    }

    /// <summary>This count plus <paramref name="other"/> (same day, key, credential and model assumed), saturating.</summary>
    public UsageCount Add(UsageCount other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return this with
        {
            Requests = Sum(Requests, other.Requests),
            InputTokens = Sum(InputTokens, other.InputTokens),
            OutputTokens = Sum(OutputTokens, other.OutputTokens),
            CacheCreationTokens = Sum(CacheCreationTokens, other.CacheCreationTokens),
            CacheReadTokens = Sum(CacheReadTokens, other.CacheReadTokens),
        };
    }

    /// <summary>
    /// <paramref name="counts"/> added up per day, client key, credential and model (one row each, ordered by them,
    /// so concurrent writers take row locks in one order), negative counts as 0.
    /// </summary>
    public static IReadOnlyList<UsageCount> Aggregate(IEnumerable<UsageCount> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var rows = new Dictionary<(DateOnly, string, string, string), UsageCount>();
        foreach (var count in counts)
        {
            var key = (count.Day, count.ClientKey, count.Credential, count.Model);
            var zero = count with { Requests = 0, InputTokens = 0, OutputTokens = 0, CacheCreationTokens = 0, CacheReadTokens = 0 };
            rows[key] = (rows.TryGetValue(key, out var sum) ? sum : zero).Add(count);
        }

        return [.. rows.Values
            .OrderBy(r => r.Day)
            .ThenBy(r => r.ClientKey, StringComparer.Ordinal)
            .ThenBy(r => r.Credential, StringComparer.Ordinal)
            .ThenBy(r => r.Model, StringComparer.Ordinal)];
    }

    private static string Cut(string? value) => value is null ? string.Empty : value.Length <= MaxNameLength ? value : value[..MaxNameLength];
}
