using System.Net;
using System.Text.RegularExpressions;

namespace Latchkey.Testing;

/// <summary>
/// What a browser does with a local page it is asked to open: Latchkey hands the browser a <c>file://</c> page
/// (never the secret-bearing URL itself, which would sit in the browser's arguments) whose
/// <c>&lt;meta http-equiv="refresh"&gt;</c> sends it on. <see cref="Follow"/> reads the page and returns where its
/// refresh goes, parsed the way the HTML standard says (optional <c>url=</c>; a quote right after it ends at the
/// same quote, an unquoted URL runs to the end; character references decoded); an http(s) URL is returned as it is.
/// </summary>
internal static partial class LocalPage
{
    public static Uri Follow(string arg)
    {
        var uri = Uri.TryCreate(arg, UriKind.Absolute, out var parsed) ? parsed : new Uri(Path.GetFullPath(arg));
        if (!uri.IsFile)
        {
            return uri;
        }

        var html = File.ReadAllText(uri.LocalPath);
        foreach (Match meta in MetaRegex().Matches(html))
        {
            var attrs = AttributeRegex().Matches(meta.Value).ToDictionary(a => a.Groups["name"].Value.ToLowerInvariant(), a => WebUtility.HtmlDecode(a.Groups["dq"].Success ? a.Groups["dq"].Value : a.Groups["sq"].Value));
            if (attrs.TryGetValue("http-equiv", out var equiv) && equiv.Equals("refresh", StringComparison.OrdinalIgnoreCase) && attrs.TryGetValue("content", out var content))
            {
                var m = RefreshRegex().Match(content);
                var target = m.Groups["url"].Value;
                if (target.Length > 0 && target[0] is '"' or '\'')
                {
                    var end = target.IndexOf(target[0], 1);
                    target = end < 0 ? target[1..] : target[1..end];
                }

                if (m.Success && target.Trim() is { Length: > 0 } trimmed)
                {
                    return new Uri(uri, trimmed);
                }
            }
        }

        throw new InvalidOperationException($"the local page {uri.LocalPath} has no meta refresh to follow");
    }

    [GeneratedRegex("<meta\\b[^>]*>", RegexOptions.IgnoreCase)]
    private static partial Regex MetaRegex();

    [GeneratedRegex("""(?<name>[\w-]+)\s*=\s*(?:"(?<dq>[^"]*)"|'(?<sq>[^']*)')""")]
    private static partial Regex AttributeRegex();

    [GeneratedRegex("""^\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?(?<url>.*)$""", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
    private static partial Regex RefreshRegex();
}
