using System.Globalization;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.Diagnostics;

namespace Latchkey.Tests.Diagnostics;

/// <summary>
/// How Latchkey quotes what a server said: whatever the server wrote around a secret it was sent, the quote never
/// holds the secret, a control, format or separator character, or more than the bound; quoting twice changes nothing.
/// </summary>
public sealed class ServerTextTests
{
    /// <summary>Secrets as servers issue them (base64url, hex, JWT-ish, with the odd '+', '/' or '=' of base64).</summary>
    private static readonly Gen<string> Secrets =
        Gen.Elements("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/=".ToCharArray())
            .ArrayOf().Where(a => a.Length is >= 8 and <= 60).Select(a => new string(a));

    /// <summary>Any text a server may write, control characters, separators and broken surrogates included.</summary>
    private static readonly Gen<string> Texts = Gen.OneOf(
            Gen.Choose(0, 0x7f).Select(i => (char)i),
            Gen.Elements('\u200b', '\u202e', '\u2028', '\u2029', '\ufeff', '\ud800', '\udc00', '\u001b', '\u0085', 'é', '…'))
        .ArrayOf().Select(a => new string(a));

    /// <summary>A secret echoed as sent, URL- or form-encoded, or twice, with any text before and after it.</summary>
    private static readonly Gen<(string Text, string Secret)> Echoes =
        from before in Texts
        from after in Texts
        from secret in Secrets
        from form in Gen.Choose(0, 3)
        select (before + form switch
        {
            0 => secret,
            1 => Uri.EscapeDataString(secret),
            2 => Uri.EscapeDataString(secret).Replace("%20", "+", StringComparison.Ordinal),
            _ => secret + secret,
        } + after, secret);

    [Property(MaxTest = 500)]
    public Property Quote_SecretEchoedAnywhereAndAnyhow_NeverInTheQuote() =>
        Prop.ForAll(Echoes.ToArbitrary(), echo =>
        {
            var quote = ServerText.Quote(echo.Text, ["unrelated-secret", echo.Secret], int.MaxValue);

            return !quote.Contains(echo.Secret, StringComparison.Ordinal) && !quote.Contains(Uri.EscapeDataString(echo.Secret), StringComparison.Ordinal);
        });

    [Property(MaxTest = 500)]
    public Property Quote_AnyText_BoundedPrintableAndStable() =>
        Prop.ForAll(Gen.Zip(Texts, Gen.Choose(2, 300)).ToArbitrary(), input =>
        {
            var (text, max) = input;
            var quote = ServerText.Quote(text, [], max);

            return quote.Length <= max
                && !HasLoneSurrogate(quote)
                && quote.EnumerateRunes().All(r => !Rune.IsControl(r) && Rune.GetUnicodeCategory(r) is not (UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator))
                && ServerText.Quote(quote, [], max) == quote;
        });

    [Fact]
    public void Quote_ServerWritesTheSecretsSpaceAsATab_StillMasked()
    {
        var quote = ServerText.Quote("token=correct\thorse staple", ["correct horse staple"]);

        Assert.Equal("token=***", quote);
    }

    [Fact]
    public void Quote_ForgedLogLineAndTerminalEscape_OneLineNoEscape()
    {
        var quote = ServerText.Quote("bad key\u001b[2J\nLatchkey gateway on http://evil.example", []);

        Assert.Equal("bad key?[2J Latchkey gateway on http://evil.example", quote);
    }

    [Theory]
    [InlineData("/v1/{0}/x")]
    [InlineData("token={0}; path=/")]
    [InlineData("{0}{0}")]
    [InlineData("é\r\n{0}")]
    public void Quote_ClientKeyAnywhere_MaskedByItsShape(string template)
    {
        var (key, _) = Latchkey.Store.ClientKeyFormat.Generate();

        var quote = ServerText.Quote(string.Format(CultureInfo.InvariantCulture, template, key), [], int.MaxValue);

        Assert.False(quote.Contains(key[3..], StringComparison.Ordinal), "the key's id and secret are in the quote");
        Assert.Contains(ServerText.MaskedKey, quote, StringComparison.Ordinal);
    }

    [Fact]
    public void Quote_PrintableAsciiWithNothingToMask_TheSameStringWithoutAllocating()
    {
        const string path = "/v1/messages/count_tokens";
        string?[] none = [];
        Assert.Same(path, ServerText.Quote(path, none, ServerText.MaxLength)); // warm up

        var before = GC.GetAllocatedBytesForCurrentThread();
        var same = true;
        for (var i = 0; i < 1000; i++)
        {
            same &= ReferenceEquals(path, ServerText.Quote(path, none, ServerText.MaxLength));
        }

        Assert.True(same);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Quote_LongText_CutToTheBoundWithAnEllipsisAndNoHalfSurrogatePair()
    {
        var text = new string('a', 198) + "😀" + new string('b', 50);

        var quote = ServerText.Quote(text, []);

        Assert.Equal(new string('a', 198) + "…", quote);
        Assert.Equal(ServerText.MaxLength - 1, quote.Length);
    }

    private static bool HasLoneSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && (i + 1 == text.Length || !char.IsLowSurrogate(text[i + 1])))
            {
                return true;
            }

            if (char.IsLowSurrogate(text[i]) && (i == 0 || !char.IsHighSurrogate(text[i - 1])))
            {
                return true;
            }
        }

        return false;
    }
}
