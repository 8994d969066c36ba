using System.Globalization;

namespace Latchkey.Text;

/// <summary>Durations as people type them, on the command line and in the dashboard: <c>90s</c>, <c>30m</c>,
/// <c>12h</c>, <c>7d</c> (more than zero, at most ten years).</summary>
internal static class HumanDuration
{
    /// <summary>How to write one, for the message that refuses a value.</summary>
    public const string Hint = "Write it as a number and a unit: 90s, 30m, 12h or 7d.";

    public static bool TryParse(string text, out TimeSpan duration)
    {
        ArgumentNullException.ThrowIfNull(text);
        duration = default;
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
                duration = s;
                return true;
            }
        }

        return false;
    }

    /// <summary>The sentence that refuses <paramref name="text"/> given as <paramref name="what"/> (an option or a field).</summary>
    public static string NotADuration(string what, string text) => $"{what} '{text}' is not a duration.";
}
