using System.Globalization;
using System.Text;

namespace Latchkey.Store;

/// <summary>
/// A request rate: at most <see cref="Count"/> requests per <see cref="Window"/>, counted as a bucket of
/// <see cref="Count"/> requests that refills evenly over the window (GCRA; see <see cref="KeyLimitMath"/>).
/// </summary>
/// <param name="Count">Requests per window, 1 or more.</param>
/// <param name="Window">One second, minute, hour or day.</param>
internal readonly record struct RateLimit(long Count, TimeSpan Window)
{
    /// <summary>The window's unit as <see cref="ToString"/> writes it, and its length in seconds.</summary>
    private static readonly (string Unit, long Seconds)[] Units = [("s", 1), ("min", 60), ("hour", 3600), ("day", 86400)];

    /// <summary>The window in whole seconds, as the store keeps it.</summary>
    public long WindowSeconds => (long)Window.TotalSeconds;

    /// <summary><c>60/min</c>, <c>10/s</c>, <c>1000/hour</c>, <c>5000/day</c>.</summary>
    public override string ToString()
    {
        var seconds = WindowSeconds;
        var unit = Array.Find(Units, u => u.Seconds == seconds).Unit ?? seconds.ToString(CultureInfo.InvariantCulture) + "s";
        return Count.ToString(CultureInfo.InvariantCulture) + "/" + unit;
    }

    /// <summary>A rate read back from the store's columns; null when they do not make one.</summary>
    public static RateLimit? FromStored(long? count, long? windowSeconds) =>
        count is > 0 and <= ClientKeyLimits.MaxCount && windowSeconds is { } w && Array.Exists(Units, u => u.Seconds == w)
            ? new RateLimit(count.Value, TimeSpan.FromSeconds(w))
            : null;

    /// <summary>The window a unit names (<c>s</c>, <c>sec</c>, <c>second</c>, <c>min</c>, <c>minute</c>, <c>h</c>, <c>hour</c>, <c>d</c>, <c>day</c>); null for another word.</summary>
    internal static TimeSpan? WindowOf(string unit) => unit.ToLowerInvariant() switch
    {
        "s" or "sec" or "second" => TimeSpan.FromSeconds(1),
        "m" or "min" or "minute" => TimeSpan.FromMinutes(1),
        "h" or "hr" or "hour" => TimeSpan.FromHours(1),
        "d" or "day" => TimeSpan.FromDays(1),
        _ => null,
    };
}

/// <summary>
/// What a client key may spend: requests per window, tokens per UTC day, requests in flight at once. Each is null
/// when the key has no such limit; a key with none has no <see cref="ClientKeyLimits"/> at all
/// (<see cref="ClientKey.Limits"/> is null). Sealed with the key's row (<see cref="RowSeal.ClientKey"/>), so someone
/// who can write the database cannot raise or remove one.
/// </summary>
/// <param name="Rate">Requests per window.</param>
/// <param name="TokensPerDay">Tokens (input and output, as the providers count them) per UTC day.</param>
/// <param name="Concurrent">Requests in flight at once.</param>
internal sealed record ClientKeyLimits(RateLimit? Rate, long? TokensPerDay, int? Concurrent)
{
    /// <summary>The largest count any limit accepts.</summary>
    public const long MaxCount = 1_000_000_000_000;

    /// <summary>The most requests in flight at once a key may be allowed.</summary>
    public const int MaxConcurrent = 100_000;

    /// <summary>The value that removes a limit in <c>latchkey keys set</c>.</summary>
    public const string None = "none";

    public const string RateHint = "Write it as a count per second, minute, hour or day: 10/s, 60/min, 1000/hour, 50000/day.";

    public const string TokensHint = "Write it as tokens per UTC day: 2000000/day (the budget starts again at midnight UTC).";

    public const string ConcurrentHint = "Write it as a whole number of requests in flight at once, e.g. 4.";

    /// <summary>Whether any limit is set.</summary>
    public bool Any => Rate is not null || TokensPerDay is not null || Concurrent is not null;

    /// <summary>These limits, or null when none is set (how a key without limits is kept).</summary>
    public ClientKeyLimits? OrNull() => Any ? this : null;

    /// <summary><c>60/min, 2000000 tokens/day, 4 at once</c>; <c>-</c> for none.</summary>
    public static string Describe(ClientKeyLimits? limits)
    {
        if (limits is null || !limits.Any)
        {
            return "-";
        }

        var parts = new List<string>(3);
        if (limits.Rate is { } rate)
        {
            parts.Add(rate.ToString());
        }

        if (limits.TokensPerDay is { } tokens)
        {
            parts.Add(tokens.ToString(CultureInfo.InvariantCulture) + " tokens/day");
        }

        if (limits.Concurrent is { } concurrent)
        {
            parts.Add(concurrent.ToString(CultureInfo.InvariantCulture) + " at once");
        }

        return string.Join(", ", parts);
    }

    /// <summary>Parses a rate (<c>60/min</c>); null and the reason when it is not one.</summary>
    public static RateLimit? ParseRate(string text, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        problem = null;
        if (Split(text) is not { } parts)
        {
            problem = $"'{Shown(text)}' is not a rate: it needs a count, a slash and a unit.";
            return null;
        }

        if (CountOf(parts.Count) is not { } count)
        {
            problem = $"'{Shown(text)}' is not a rate: '{Shown(parts.Count)}' is not a whole number from 1 to {MaxCount.ToString(CultureInfo.InvariantCulture)}.";
            return null;
        }

        if (RateLimit.WindowOf(parts.Unit) is not { } window)
        {
            problem = $"'{Shown(text)}' is not a rate: '{Shown(parts.Unit)}' is not a unit (s, min, hour or day).";
            return null;
        }

        if (count > (long)window.TotalMicroseconds)
        {
            problem = $"'{Shown(text)}' is more than one request per microsecond, which Latchkey does not count.";
            return null;
        }

        return new RateLimit(count, window);
    }

    /// <summary>Parses a token budget (<c>2000000/day</c>); null and the reason when it is not one.</summary>
    public static long? ParseTokens(string text, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        problem = null;
        if (Split(text) is not { } parts)
        {
            problem = $"'{Shown(text)}' is not a token budget: it needs a count, a slash and 'day'.";
            return null;
        }

        if (CountOf(parts.Count) is not { } count)
        {
            problem = $"'{Shown(text)}' is not a token budget: '{Shown(parts.Count)}' is not a whole number from 1 to {MaxCount.ToString(CultureInfo.InvariantCulture)}.";
            return null;
        }

        if (RateLimit.WindowOf(parts.Unit) != TimeSpan.FromDays(1))
        {
            problem = $"'{Shown(text)}' is not a token budget: tokens are counted per UTC day, so the unit must be 'day', not '{Shown(parts.Unit)}'.";
            return null;
        }

        return count;
    }

    /// <summary>Parses a concurrency limit (<c>4</c>); null and the reason when it is not one.</summary>
    public static int? ParseConcurrent(string text, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        problem = null;
        if (CountOf(text.Trim()) is { } count && count <= MaxConcurrent)
        {
            return (int)count;
        }

        problem = $"'{Shown(text)}' is not a number of requests at once: it must be a whole number from 1 to {MaxConcurrent.ToString(CultureInfo.InvariantCulture)}.";
        return null;
    }

    private static (string Count, string Unit)? Split(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        return slash <= 0 || slash == text.Length - 1 ? null : (text[..slash].Trim(), text[(slash + 1)..].Trim());
    }

    private static long? CountOf(string text) =>
        text.Length is > 0 and <= 13 && text.All(char.IsAsciiDigit)
        && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= MaxCount
            ? n
            : null;

    /// <summary>A value as a message quotes it: printable ASCII only, at most 40 characters.</summary>
    private static string Shown(string text)
    {
        var sb = new StringBuilder(Math.Min(text.Length, 40));
        foreach (var c in text.AsSpan(0, Math.Min(text.Length, 40)))
        {
            sb.Append(c is >= ' ' and <= '~' ? c : '?');
        }

        return text.Length > 40 ? sb.Append('…').ToString() : sb.ToString();
    }
}
