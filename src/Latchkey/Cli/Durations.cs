using System.Globalization;

namespace Latchkey.Cli;

/// <summary>Parses durations as people type them: <c>90s</c>, <c>30m</c>, <c>12h</c>, <c>7d</c>.</summary>
internal static class Durations
{
    public static TimeSpan Parse(string text, string option)
    {
        var t = text.Trim();
        if (t.Length >= 2 && double.TryParse(t.AsSpan(0, t.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            var unit = char.ToLowerInvariant(t[^1]);
            TimeSpan? span = unit switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                _ => null,
            };
            if (span is { } s && s <= TimeSpan.FromDays(3650))
            {
                return s;
            }
        }

        throw new CliException(ExitCodes.Usage, $"{option} '{text}' is not a duration.", $"Write it as a number and a unit: 90s, 30m, 12h or 7d.");
    }
}
