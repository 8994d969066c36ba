using System.Globalization;
using System.Text.RegularExpressions;

namespace Latchkey.Tests.Observability;

/// <summary>Reads the Prometheus text format <c>/metrics</c> answers with: one sample per line, <c>name{labels} value</c>.</summary>
internal static partial class MetricsText
{
    /// <summary>The value of the sample of <paramref name="name"/> whose labels include every one of
    /// <paramref name="labels"/>, summed over the samples that match; 0 when none does.</summary>
    public static double Value(string text, string name, params (string Name, string Value)[] labels)
    {
        double sum = 0;
        foreach (Match m in Sample().Matches(text))
        {
            if (m.Groups["name"].Value != name)
            {
                continue;
            }

            var found = Label().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups[1].Value, l => l.Groups[2].Value, StringComparer.Ordinal);
            if (labels.All(l => found.TryGetValue(l.Name, out var v) && v == l.Value))
            {
                sum += double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?<labels>[^}]*)\})? (?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex Sample();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex Label();
}
