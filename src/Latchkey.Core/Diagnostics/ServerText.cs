using System.Globalization;
using System.Text;
using Latchkey.Store;

namespace Latchkey.Diagnostics;

/// <summary>
/// Text someone else chose — an upstream's error message and request id, an authorization server's
/// <c>error</c>, <c>error_description</c> and request id, and a request's path or route name as a caller sent it —
/// made fit to quote to an agent, a log line, the audit table or <c>status</c>: every secret masked (as sent, and
/// form- or URL-encoded), every client key (<c>lk_…</c>, by its shape) masked, control, format and separator
/// characters and lone surrogates replaced (no forged log lines, no terminal escapes, no hidden text), and cut to a
/// bounded length. This is the one way Latchkey quotes text it did not write.
/// </summary>
/// <remarks>
/// <para><b>Cost.</b> Printable ASCII with no secret to mask and nothing key-shaped in it comes back as the same
/// string, without allocating, so quoting every request's path is cheap.</para>
/// <para>Masking catches a server that echoes a secret it was sent; it cannot catch one that transforms it (reverses,
/// re-encodes, splits it), so this bounds careless servers, not a deliberately hostile one that holds the secret.</para>
/// </remarks>
internal static class ServerText
{
    /// <summary>The longest quote of a message (the cut one ends in <c>…</c> and is exactly this long).</summary>
    public const int MaxLength = 200;

    /// <summary>The longest request id kept (real ones are under 64 characters).</summary>
    public const int MaxRequestIdLength = 128;

    /// <summary>The longest error code kept (OAuth's are under 32 characters).</summary>
    public const int MaxCodeLength = 64;

    /// <summary>What a masked secret reads as.</summary>
    public const string Mask = "***";

    /// <summary>What a masked client key reads as.</summary>
    public const string MaskedKey = ClientKeyFormat.Prefix + Mask;

    /// <summary>
    /// <paramref name="text"/> with every non-empty secret masked and unsafe characters replaced, then cut to
    /// <paramref name="maxLength"/>. Quoting a quote changes nothing.
    /// </summary>
    public static string Quote(string text, IEnumerable<string?> secrets, int maxLength = MaxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var clean = Sanitize(text, secrets);
        if (clean.Length <= maxLength)
        {
            return clean;
        }

        var cut = maxLength - 1;
        if (char.IsHighSurrogate(clean[cut - 1]))
        {
            cut--; // never split a surrogate pair
        }

        return string.Concat(clean.AsSpan(0, cut), "…");
    }

    /// <summary><paramref name="text"/> with every non-empty secret masked and unsafe characters replaced, not cut.</summary>
    public static string Sanitize(string text, IEnumerable<string?> secrets)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(secrets);

        // Masked before the characters are replaced (a secret the text holds as sent) and after (one whose space or '?'
        // the server wrote as a control character, so that replacing it would rebuild the secret).
        var forms = Forms(secrets);
        if (forms.Length == 0 && IsPlain(text))
        {
            return text;
        }

        return MaskKeys(MaskAll(Replace(MaskAll(text, forms)), forms));
    }

    /// <summary>Every secret a credential holds (API key, access, refresh and ID tokens, client secret), to mask.</summary>
    public static IEnumerable<string?> SecretsOf(CredentialSecrets secrets)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        return [secrets.ApiKey, secrets.AccessToken, secrets.RefreshToken, secrets.ClientSecret, secrets.IdToken];
    }

    /// <summary>Printable ASCII without a client key in it: nothing to replace or mask.</summary>
    private static bool IsPlain(string text)
    {
        foreach (var c in text)
        {
            if (c is < ' ' or > '~')
            {
                return false;
            }
        }

        return ClientKeyFormat.IndexOfKey(text) < 0;
    }

    /// <summary>Every key-shaped run of characters masked (a key a caller put in a path, or a server echoed).</summary>
    private static string MaskKeys(string text)
    {
        while (ClientKeyFormat.IndexOfKey(text) is var at and >= 0)
        {
            text = string.Concat(text.AsSpan(0, at), MaskedKey, text.AsSpan(at + ClientKeyFormat.Length));
        }

        return text;
    }

    private static string MaskAll(string text, string[] forms)
    {
        foreach (var form in forms)
        {
            text = text.Replace(form, Mask, StringComparison.Ordinal);
        }

        return text;
    }

    /// <summary>Tabs and line breaks become spaces; control, format and separator characters and lone surrogates become '?'.</summary>
    private static string Replace(string text)
    {
        var sb = new StringBuilder(text.Length);
        Span<char> utf16 = stackalloc char[2];
        foreach (var rune in text.EnumerateRunes()) // a lone surrogate comes out as U+FFFD
        {
            if (rune.Value is '\t' or '\r' or '\n')
            {
                sb.Append(' ');
            }
            else if (Rune.IsControl(rune) || Rune.GetUnicodeCategory(rune) is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
            {
                sb.Append('?'); // invisible or layout-changing: zero-width, bidi overrides, tag characters, separators
            }
            else
            {
                sb.Append(utf16[..rune.EncodeToUtf16(utf16)]);
            }
        }

        return sb.ToString();
    }

    /// <summary>
    /// Each secret as sent, as a form or URL would carry it, and as <see cref="Replace"/> would leave it; longest first,
    /// so that a secret holding a shorter one is masked whole, not left with its remainder showing.
    /// </summary>
    private static string[] Forms(IEnumerable<string?> secrets)
    {
        HashSet<string>? forms = null;
        foreach (var secret in secrets)
        {
            if (string.IsNullOrEmpty(secret))
            {
                continue;
            }

            forms ??= new HashSet<string>(StringComparer.Ordinal);
            forms.Add(secret);
            forms.Add(Replace(secret));
            var escaped = Uri.EscapeDataString(secret);
            forms.Add(escaped);
            forms.Add(escaped.Replace("%20", "+", StringComparison.Ordinal)); // application/x-www-form-urlencoded
        }

        return forms is null ? [] : [.. forms.OrderByDescending(f => f.Length)];
    }
}
