using System.Globalization;

namespace Latchkey.Dashboard;

/// <summary>
/// Token usage over time as an SVG drawn on the server: one stacked bar per UTC day, one colour per series (a client
/// key or a model), a legend, and a tooltip (<c>title</c>) on every piece. Only SVG attributes, no <c>style</c>
/// attribute and no script, so the dashboard's Content-Security-Policy (<c>default-src 'none'; style-src 'self'</c>)
/// lets it draw; every name is encoded by <see cref="Html"/>.
/// </summary>
internal static class UsageChart
{
    /// <summary>How many series get their own colour; the rest are drawn together as "other".</summary>
    public const int MaxSeries = 8;

    private const int Width = 720;
    private const int Height = 260;
    private const int Left = 64;
    private const int Right = 12;
    private const int Top = 12;
    private const int Bottom = 36;

    private static readonly string[] Palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
    private const string OtherColour = "#bab0ac";

    /// <summary>One series: its name (as shown) and its tokens on each day of the chart, in the days' order.</summary>
    internal sealed record Series(string Name, long[] PerDay)
    {
        public long Total => PerDay.Aggregate(0L, (sum, v) => sum > long.MaxValue - v ? long.MaxValue : sum + v);
    }

    /// <summary>
    /// The chart: <paramref name="series"/> (the largest <see cref="MaxSeries"/> each in a colour, the rest added up as
    /// "other") over <paramref name="days"/>, labelled <paramref name="title"/> for assistive technology.
    /// </summary>
    public static HtmlContent StackedBars(string id, string title, IReadOnlyList<DateOnly> days, IReadOnlyList<Series> series)
    {
        var shown = series.OrderByDescending(s => s.Total).ThenBy(s => s.Name, StringComparer.Ordinal).ToList();
        if (shown.Count > MaxSeries)
        {
            var rest = shown.Skip(MaxSeries - 1).ToList();
            var other = new long[days.Count];
            foreach (var s in rest)
            {
                for (var d = 0; d < days.Count; d++)
                {
                    other[d] = Add(other[d], s.PerDay[d]);
                }
            }

            shown = [.. shown.Take(MaxSeries - 1), new Series($"other ({rest.Count})", other)];
        }

        var dayTotals = days.Select((_, d) => shown.Aggregate(0L, (sum, s) => Add(sum, s.PerDay[d]))).ToArray();
        var top = NiceMax(dayTotals.DefaultIfEmpty(0).Max());
        var plotWidth = Width - Left - Right;
        var plotHeight = Height - Top - Bottom;
        var slot = days.Count == 0 ? plotWidth : (double)plotWidth / days.Count;
        var barWidth = Math.Max(1, slot * 0.7);

        var grid = new List<HtmlContent>();
        for (var i = 0; i <= 4; i++)
        {
            var value = top / 4 * i;
            var y = Top + plotHeight - (plotHeight * i / 4.0);
            grid.Add(Html.Of($"""<line class="grid" x1="{Left}" x2="{Width - Right}" y1="{F(y)}" y2="{F(y)}" stroke="currentColor" stroke-opacity="0.2"/><text x="{Left - 6}" y="{F(y + 4)}" text-anchor="end" font-size="11" fill="currentColor">{Short(value)}</text>"""));
        }

        var bars = new List<HtmlContent>();
        var labelEvery = Math.Max(1, (int)Math.Ceiling(days.Count / 10.0));
        for (var d = 0; d < days.Count; d++)
        {
            var x = Left + (slot * d) + ((slot - barWidth) / 2);
            var baseline = (double)(Top + plotHeight);
            var dayText = days[d].ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            for (var s = 0; s < shown.Count; s++)
            {
                var value = shown[s].PerDay[d];
                if (value <= 0)
                {
                    continue;
                }

                var h = top == 0 ? 0 : plotHeight * (double)value / top;
                baseline -= h;
                var colour = s == MaxSeries - 1 && series.Count > MaxSeries ? OtherColour : Palette[s % Palette.Length];
                bars.Add(Html.Of($"""<rect class="bar" data-day="{dayText}" data-series="{shown[s].Name}" data-tokens="{value}" x="{F(x)}" y="{F(baseline)}" width="{F(barWidth)}" height="{F(Math.Max(h, 0.5))}" fill="{colour}"><title>{dayText} · {shown[s].Name}: {value.ToString("N0", CultureInfo.InvariantCulture)} tokens</title></rect>"""));
            }

            if (d % labelEvery == 0)
            {
                bars.Add(Html.Of($"""<text x="{F(Left + (slot * d) + (slot / 2))}" y="{Height - Bottom + 16}" text-anchor="middle" font-size="11" fill="currentColor">{days[d].ToString("MM-dd", CultureInfo.InvariantCulture)}</text>"""));
            }
        }

        var legend = Html.Join(shown.Select((s, i) => Html.Of(
            $"""<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="{(i == MaxSeries - 1 && series.Count > MaxSeries ? OtherColour : Palette[i % Palette.Length])}"/></svg> {s.Name} <span class="muted">{s.Total.ToString("N0", CultureInfo.InvariantCulture)}</span></li>""")));

        return Html.Of($"""
            <figure class="chart" id="{id}">
            <svg role="img" aria-labelledby="{id}-title" viewBox="0 0 {Width} {Height}" width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">
            <title id="{id}-title">{title}</title>
            {Html.Join(grid)}
            <line x1="{Left}" x2="{Width - Right}" y1="{Top + plotHeight}" y2="{Top + plotHeight}" stroke="currentColor"/>
            {Html.Join(bars)}
            </svg>
            <figcaption><ul class="legend">{legend}</ul></figcaption>
            </figure>
            """);
    }

    /// <summary>A round number at or above <paramref name="max"/> that splits into four even steps.</summary>
    internal static long NiceMax(long max)
    {
        if (max <= 0)
        {
            return 4;
        }

        var step = (double)max / 4;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(step)));
        var nice = new[] { 1.0, 2, 2.5, 5, 10 }.First(m => m * magnitude >= step) * magnitude;
        return nice * 4 >= long.MaxValue ? long.MaxValue : Math.Max(4, (long)Math.Ceiling(nice) * 4);
    }

    /// <summary>A count as an axis label: 950, 1.2k, 3.4M, 5.6G.</summary>
    internal static string Short(long value) => value switch
    {
        >= 1_000_000_000 => (value / 1e9).ToString("0.#", CultureInfo.InvariantCulture) + "G",
        >= 1_000_000 => (value / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (value / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k",
        _ => value.ToString(CultureInfo.InvariantCulture),
    };

    private static long Add(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;

    private static string F(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
