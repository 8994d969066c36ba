using System.Text;
using System.Text.RegularExpressions;
using Latchkey.Store;

namespace Latchkey.Mcp;

/// <summary>
/// A unified diff of two texts, line by line (what <c>mcp install --dry-run</c> prints). Client keys in it are masked:
/// the file may hold keys of other entries, and a dry run prints to a terminal.
/// </summary>
internal static partial class LineDiff
{
    private const int Context = 2;

    /// <summary>The diff from <paramref name="before"/> to <paramref name="after"/>, labelled with <paramref name="path"/>; empty when they are equal.</summary>
    public static string Unified(string path, string? before, string after)
    {
        var a = Lines(before ?? string.Empty);
        var b = Lines(after);
        var prefix = 0;
        while (prefix < a.Length && prefix < b.Length && a[prefix] == b[prefix])
        {
            prefix++;
        }

        var suffix = 0;
        while (suffix < a.Length - prefix && suffix < b.Length - prefix && a[^(suffix + 1)] == b[^(suffix + 1)])
        {
            suffix++;
        }

        if (prefix == a.Length && prefix == b.Length)
        {
            return string.Empty;
        }

        // The changed middle, as an edit script from a longest common subsequence (the middle is small: one entry).
        var middleA = a[prefix..(a.Length - suffix)];
        var middleB = b[prefix..(b.Length - suffix)];
        var lcs = new int[middleA.Length + 1, middleB.Length + 1];
        for (var i = middleA.Length - 1; i >= 0; i--)
        {
            for (var j = middleB.Length - 1; j >= 0; j--)
            {
                lcs[i, j] = middleA[i] == middleB[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var lines = new List<string>();
        var startA = Math.Max(0, prefix - Context);
        for (var k = startA; k < prefix; k++)
        {
            lines.Add(" " + a[k]);
        }

        int x = 0, y = 0;
        while (x < middleA.Length || y < middleB.Length)
        {
            if (x < middleA.Length && y < middleB.Length && middleA[x] == middleB[y])
            {
                lines.Add(" " + middleA[x++]);
                y++;
            }
            else if (y < middleB.Length && (x == middleA.Length || lcs[x, y + 1] >= lcs[x + 1, y]))
            {
                lines.Add("+" + middleB[y++]);
            }
            else
            {
                lines.Add("-" + middleA[x++]);
            }
        }

        var endA = Math.Min(a.Length, a.Length - suffix + Context);
        for (var k = a.Length - suffix; k < endA; k++)
        {
            lines.Add(" " + a[k]);
        }

        var countA = lines.Count(l => l[0] != '+');
        var countB = lines.Count(l => l[0] != '-');
        var text = new StringBuilder();
        text.Append("--- ").Append(before is null ? "/dev/null" : path).Append('\n');
        text.Append("+++ ").Append(path).Append('\n');
        text.Append($"@@ -{(countA == 0 ? 0 : startA + 1)},{countA} +{(countB == 0 ? 0 : startA + 1)},{countB} @@\n");
        foreach (var line in lines)
        {
            text.Append(Mask(line)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>
    /// The line with every client key replaced by <c>lk_…</c>, and every other bearer token (another server's entry
    /// shown as context) by <c>Bearer …</c>.
    /// </summary>
    public static string Mask(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        while (ClientKeyFormat.IndexOfKey(line) is var at && at >= 0)
        {
            line = string.Concat(line.AsSpan(0, at), "lk_…", line.AsSpan(at + ClientKeyFormat.Length));
        }

        return BearerToken().Replace(line, m => m.Value.StartsWith("lk_", StringComparison.Ordinal) ? m.Value : "…");
    }

    [GeneratedRegex("""(?<=Bearer\s+)[^\s"',}]+""", RegexOptions.IgnoreCase)]
    private static partial Regex BearerToken();

    private static string[] Lines(string text) =>
        text.Length == 0 ? [] : text.TrimEnd('\n').Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
}
