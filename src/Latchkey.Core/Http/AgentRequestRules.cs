using System.Globalization;
using System.Text;

namespace Latchkey.Http;

/// <summary>
/// The syntactic rules an agent's request meets before the gateway forwards anything: the request target it
/// appends to an upstream URL, and its header values. Pure functions over what the agent sent; nothing here reads
/// a store.
/// </summary>
/// <remarks>
/// <para><b>Paths.</b> The part of the request target after <c>/WORD/NAME</c> is appended to the upstream URL
/// exactly as the agent sent it, byte for byte (no decoding, no re-encoding), so it must not be able to climb out
/// of the upstream's base path on <i>any</i> server, whatever that server decodes. The path is therefore
/// percent-decoded again and again until it no longer changes (at most <see cref="MaxDecodingRounds"/> rounds), and
/// refused when the result has:</para>
/// <list type="bullet">
/// <item>a segment made only of dots (and spaces), after cutting a <c>;parameter</c> off it: <c>..</c>,
/// <c>%2e%2e</c>, <c>.%2E</c>, <c>..%2F</c> (the encoded slash ends the segment too), <c>..;/</c>,
/// <c>%252e%252e%252f</c>, <c>...</c>;</item>
/// <item>a backslash (some servers read it as a slash: <c>..\</c>, <c>..%5C</c>), or a control character;</item>
/// <item>bytes that are not UTF-8 (overlong forms such as <c>%C0%AE</c> were read as a dot by some servers);</item>
/// <item>a non-ASCII character that is punctuation, a symbol of mathematics or currency, a separator or a format
/// character (see <see cref="IsRefusedNonAscii"/>);</item>
/// <item>more encoding layers than any real client uses.</item>
/// </list>
/// <para><b>Why non-ASCII punctuation is refused.</b> A server that applies Unicode compatibility normalisation
/// (NFKC) to a path turns <c>．</c> into <c>.</c>, <c>‥</c> and <c>︰</c> into <c>..</c>, <c>…</c> and <c>︙</c>
/// into <c>...</c>, <c>／</c> into <c>/</c>, <c>＼</c> and <c>﹨</c> into <c>\</c>; a Windows server that converts
/// to an ANSI code page with "best fit" turns <c>∕</c> into <c>/</c> and <c>¥</c> or <c>₩</c> into <c>\</c>. A list
/// of such characters is never complete (one such list missed <c>︰</c>, <c>…</c> and <c>︙</c>), and the gateway
/// cannot normalise the path itself to look (<c>string.Normalize</c> does nothing under the invariant globalization
/// Latchkey runs with). So the rule is by kind instead: every character whose NFKC form is only dots, a slash or a
/// backslash is punctuation (Unicode category P*), and the best-fit look-alikes are punctuation or symbols of
/// mathematics (Sm) or currency (Sc); separators (Z*), control characters (Cc, such as U+0085) and format characters
/// (Cf, invisible) have no place in an API path either. Letters, marks, digits and other symbols (emoji, <c>✓</c>)
/// pass, and so do the few compatibility characters that normalise to a dot or slash <i>between</i> letters or
/// digits (<c>⒈</c> to <c>1.</c>, <c>℀</c> to <c>a/c</c>): they cannot make a dot segment.</para>
/// <para><b>Client keys.</b> A request target that holds a client key (<c>lk_…</c> in the path or the query, plain
/// or percent-encoded) is refused by <see cref="HoldsClientKey"/>: the URL would carry the key to the upstream and
/// into every log along the way.</para>
/// <para>A request target must be in origin form (start with <c>/</c>), printable ASCII, and carry no fragment
/// (<c>#</c>). The query is not inspected for dots: it is forwarded as sent and cannot change the path. An encoded slash
/// inside an ordinary segment (<c>/v1/files/a%2Fb</c>) is allowed and forwarded unchanged.</para>
/// <para><b>Route words.</b> <c>/c/</c>, <c>/r/</c> and <c>/mcp/</c> match in any case (<c>/C/NAME/...</c> is
/// <c>/c/NAME/...</c>), as ASP.NET Core's routing matches them; the name must be exactly the routed name (no
/// escapes in it).</para>
/// <para><b>Headers.</b> A header value with a control character other than tab (CR, LF, NUL, ...) is refused: it
/// could split or truncate the request on its way upstream.</para>
/// </remarks>
internal static class AgentRequestRules
{
    /// <summary>More layers of percent-encoding than this are refused (real clients encode once).</summary>
    public const int MaxDecodingRounds = 4;

    /// <summary>C0 controls, DEL and backslash: never in a decoded path.</summary>
    private static readonly System.Buffers.SearchValues<char> ControlsAndBackslash =
        System.Buffers.SearchValues.Create(new string([.. Enumerable.Range(0, 0x20).Select(i => (char)i), '\u007f', '\\']));

    /// <summary>
    /// The path and query to append to the upstream URL: the raw request target after <c>/<paramref name="routeWord"/>/<paramref name="name"/></c>,
    /// unchanged; null when the target is refused (see the rules above).
    /// </summary>
    /// <param name="rawTarget">The request target exactly as it arrived on the request line.</param>
    /// <param name="routeWord">The route's literal first segment (<c>c</c>, <c>r</c>, <c>mcp</c>), matched in any case.</param>
    /// <param name="name">The routed credential, router or server name, matched exactly.</param>
    public static string? UpstreamPathAndQuery(string rawTarget, string routeWord, string name)
    {
        ArgumentNullException.ThrowIfNull(rawTarget);
        ArgumentNullException.ThrowIfNull(routeWord);
        ArgumentNullException.ThrowIfNull(name);
        if (rawTarget.Length == 0 || rawTarget[0] != '/' || rawTarget.Contains('#', StringComparison.Ordinal))
        {
            return null;
        }

        var query = rawTarget.IndexOf('?', StringComparison.Ordinal);
        if (!IsSafePath(query < 0 ? rawTarget : rawTarget.AsSpan(0, query)) || HasUnprintable(rawTarget))
        {
            return null;
        }

        var nameAt = 1 + routeWord.Length + 1;
        var restAt = nameAt + name.Length;
        if (name.Length == 0 || rawTarget.Length < restAt
            || !rawTarget.AsSpan(1, routeWord.Length).Equals(routeWord, StringComparison.OrdinalIgnoreCase)
            || rawTarget[nameAt - 1] != '/'
            || !rawTarget.AsSpan(nameAt, name.Length).SequenceEqual(name))
        {
            return null;
        }

        var rest = rawTarget[restAt..];
        return rest.Length == 0 || rest[0] is '/' or '?' ? rest : null; // "/c/namexyz" is not "/c/name" + "xyz"
    }

    /// <summary>
    /// The upstream URL for a request: the credential's upstream URL plus the agent's path and query, unchanged (no
    /// unescaping, no dot-segment removal, no escaping: <see cref="UpstreamPathAndQuery"/> has ruled out what could
    /// climb out of the base path), so the upstream receives the bytes the agent sent. Null when the stored
    /// upstream does not make an absolute URL (a row written past <c>latchkey add</c>).
    /// </summary>
    public static Uri? UpstreamUri(string upstream, string pathAndQuery)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        return Uri.TryCreate(upstream.TrimEnd('/') + pathAndQuery, new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }, out var uri) && uri.IsAbsoluteUri ? uri : null;
    }

    /// <summary>Whether a request path (no query) stays inside whatever base path it is appended to, on any server.</summary>
    public static bool IsSafePath(ReadOnlySpan<char> path)
    {
        foreach (var c in path)
        {
            if (c is > '\x7e' or < '\x21')
            {
                return false; // a request target is printable ASCII; anything else is not what a client sends
            }
        }

        // Decode until stable. Each char of `decoded` is one byte (0-255), so a later round decodes what an
        // earlier one produced, as a server that decodes twice would.
        var decoded = path.ToString();
        for (var round = 0; decoded.Contains('%', StringComparison.Ordinal); round++)
        {
            var next = DecodeOnce(decoded);
            if (next.Length == decoded.Length)
            {
                break; // only lone '%' left: stable
            }

            if (round == MaxDecodingRounds)
            {
                return false;
            }

            decoded = next;
        }

        if (decoded.AsSpan().IndexOfAny(ControlsAndBackslash) >= 0)
        {
            return false;
        }

        var text = decoded;
        if (!Ascii.IsValid(decoded))
        {
            var bytes = new byte[decoded.Length];
            for (var i = 0; i < decoded.Length; i++)
            {
                bytes[i] = (byte)decoded[i];
            }

            if (!System.Text.Unicode.Utf8.IsValid(bytes))
            {
                return false;
            }

            text = Encoding.UTF8.GetString(bytes);
            foreach (var rune in text.EnumerateRunes())
            {
                if (IsRefusedNonAscii(rune))
                {
                    return false;
                }
            }
        }

        foreach (var range in text.AsSpan().Split('/'))
        {
            var segment = text.AsSpan(range);
            if (segment.IndexOf(';') is var parameter and >= 0)
            {
                segment = segment[..parameter]; // "..;jsessionid=x" is ".." to a server that strips path parameters
            }

            if (segment.Contains('.') && !segment.ContainsAnyExcept('.', ' '))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Whether a decoded non-ASCII character is refused in a path: punctuation, a mathematical or currency symbol,
    /// a separator, a control or a format character (see the remarks for why these kinds). ASCII is ruled on elsewhere.
    /// </summary>
    public static bool IsRefusedNonAscii(Rune rune) =>
        !rune.IsAscii && Rune.GetUnicodeCategory(rune) is
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation or UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol
            or UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
            or UnicodeCategory.Control or UnicodeCategory.Format;

    /// <summary>
    /// Whether a request target holds a client key (<see cref="Store.ClientKeyFormat"/>'s shape, anywhere), as sent or
    /// after percent-decoding it as many times as <see cref="IsSafePath"/> would. Only a target with <c>lk_</c> or a
    /// <c>%</c> in it is looked at more closely.
    /// </summary>
    public static bool HoldsClientKey(string rawTarget)
    {
        ArgumentNullException.ThrowIfNull(rawTarget);
        if (Store.ClientKeyFormat.IndexOfKey(rawTarget) >= 0)
        {
            return true;
        }

        var decoded = rawTarget;
        for (var round = 0; round <= MaxDecodingRounds && decoded.Contains('%', StringComparison.Ordinal); round++)
        {
            var next = DecodeOnce(decoded);
            if (next.Length == decoded.Length)
            {
                return false;
            }

            if (Store.ClientKeyFormat.IndexOfKey(next) >= 0)
            {
                return true;
            }

            decoded = next;
        }

        return false;
    }

    /// <summary>Whether a header value can be forwarded: no control character other than horizontal tab.</summary>
    public static bool IsSafeHeaderValue(ReadOnlySpan<char> value)
    {
        foreach (var c in value)
        {
            if (c is (< '\x20' and not '\t') or '\x7f')
            {
                return false;
            }
        }

        return true;
    }

    private static bool HasUnprintable(string rawTarget)
    {
        foreach (var c in rawTarget)
        {
            if (c is > '\x7e' or < '\x21')
            {
                return true;
            }
        }

        return false;
    }

    private static int HexDigit(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    /// <summary>One round of percent-decoding into one char per byte; a '%' not followed by two hex digits stays.</summary>
    private static string DecodeOnce(string text)
    {
        var builder = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '%' && i + 2 < text.Length && char.IsAsciiHexDigit(text[i + 1]) && char.IsAsciiHexDigit(text[i + 2]))
            {
                builder.Append((char)((HexDigit(text[i + 1]) << 4) | HexDigit(text[i + 2])));
                i += 2;
            }
            else
            {
                builder.Append(text[i]);
            }
        }

        return builder.ToString();
    }
}
