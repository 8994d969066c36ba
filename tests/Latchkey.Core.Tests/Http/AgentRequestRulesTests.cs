using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.Http;

namespace Latchkey.Tests.Http;

/// <summary>The gateway's rules for what an agent sends: the request target it appends upstream, and header values.</summary>
public sealed class AgentRequestRulesTests
{
    [Property(MaxTest = 2000)]
    public Property UpstreamPathAndQuery_AnySpellingOfADotSegment_IsRefused() =>
        Prop.ForAll(Arb.From(AgentRequestGenerators.Traversals()), target =>
            AgentRequestRules.UpstreamPathAndQuery(target, "c", "name") is null)
        .Label("a dot segment, however encoded, must never reach the upstream");

    [Property(MaxTest = 2000)]
    public Property UpstreamPathAndQuery_OrdinaryPath_IsForwardedByteForByte() =>
        Prop.ForAll(Arb.From(AgentRequestGenerators.OrdinaryRests()), rest =>
        {
            var forwarded = AgentRequestRules.UpstreamPathAndQuery("/c/name" + rest, "c", "name");
            var uri = forwarded is null ? null : AgentRequestRules.UpstreamUri("https://api.example.com/base/", forwarded);
            return (forwarded == rest).Label($"forwarded {forwarded ?? "(refused)"}")
                .And((uri?.PathAndQuery == "/base" + rest).Label($"sent {uri?.PathAndQuery}"));
        });

    [Property(MaxTest = 500)]
    public Property UpstreamPathAndQuery_RouteWordInAnyCase_IsTheSameRoute() =>
        Prop.ForAll(Arb.From(AgentRequestGenerators.OrdinaryRests()), Arb.From(Gen.Elements("c", "r", "mcp")), Arb.From(Gen.Choose(0, 7)), (rest, word, mask) =>
        {
            var cased = new string(word.Select((ch, i) => (mask & (1 << i)) != 0 ? char.ToUpperInvariant(ch) : ch).ToArray());
            return AgentRequestRules.UpstreamPathAndQuery($"/{cased}/name{rest}", word, "name") == rest;
        });

    [Theory]
    [InlineData("/c/name/v1/..%2Fadmin")]
    [InlineData("/c/name/v1/%2e%2e/admin")]
    [InlineData("/c/name/v1/.%2e/admin")]
    [InlineData("/c/name/v1/%2E%2E/admin")]
    [InlineData("/c/name/v1/..%5Cadmin")]
    [InlineData("/c/name/v1/..\\admin")]
    [InlineData("/c/name/v1/..;/admin")]
    [InlineData("/c/name/v1/..;x=1/admin")]
    [InlineData("/c/name/v1/%252e%252e%252fadmin")]
    [InlineData("/c/name/v1/%25252e%25252e/admin")]
    [InlineData("/c/name/v1/../admin")]
    [InlineData("/c/name/v1/./admin")]
    [InlineData("/c/name/v1/..")]
    [InlineData("/c/name/..")]
    [InlineData("/c/name/v1/..%20/admin")]
    [InlineData("/c/x/../name/v1")]
    [InlineData("/c/name/v1/%C0%AE%C0%AE/admin")]
    [InlineData("/c/name/v1/%EF%BC%8E%EF%BC%8E/admin")]
    [InlineData("/c/name/v1/%EF%B8%B0/admin")] // U+FE30, NFKC ".."
    [InlineData("/c/name/v1/%E2%80%A6/admin")] // U+2026, NFKC "..."
    [InlineData("/c/name/v1/%EF%B8%99/admin")] // U+FE19, NFKC "..."
    [InlineData("/c/name/v1/%E2%88%95admin")] // U+2215 division slash: "/" to a best-fit code page
    [InlineData("/c/name/v1/..%C2%A5admin")] // U+00A5 yen sign: "\" in code page 932
    [InlineData("/c/name/v1/a%C2%85b")] // U+0085 next line
    [InlineData("/c/name/v1/a%E2%80%8Bb")] // U+200B zero-width space
    [InlineData("/c/name/v1/a%00b")]
    [InlineData("/c/name/v1/a%0d%0aHost:%20evil")]
    [InlineData("/c/name/v1/x#/../../admin")]
    [InlineData("/c/name/v1/%2525252525252e")]
    [InlineData("http://127.0.0.1:7400/c/name/v1/messages")]
    [InlineData("/c/na%6De/v1/messages")]
    [InlineData("/c/namexyz/v1")]
    [InlineData("/c/other/v1")]
    [InlineData("")]
    public void UpstreamPathAndQuery_KnownAttack_IsRefused(string target) =>
        Assert.Null(AgentRequestRules.UpstreamPathAndQuery(target, "c", "name"));

    [Theory]
    [InlineData("/c/name/v1/messages", "/v1/messages")]
    [InlineData("/c/name/v1/models/claude-3-5-sonnet", "/v1/models/claude-3-5-sonnet")]
    [InlineData("/c/name/v1/models?limit=5&after=a%2Fb", "/v1/models?limit=5&after=a%2Fb")]
    [InlineData("/c/name/v1/files/a%2Fb/content", "/v1/files/a%2Fb/content")]
    [InlineData("/c/name/v1/%41%42/%7e?q=%2e%2e%2F", "/v1/%41%42/%7e?q=%2e%2e%2F")]
    [InlineData("/c/name/v1/caf%C3%A9?q=%F0%9F%98%80", "/v1/caf%C3%A9?q=%F0%9F%98%80")]
    [InlineData("/c/name/.well-known/oauth", "/.well-known/oauth")]
    [InlineData("/c/name/v1/100%25", "/v1/100%25")]
    [InlineData("/c/name/v1/x?path=../../etc", "/v1/x?path=../../etc")]
    [InlineData("/C/name/v1/messages", "/v1/messages")]
    [InlineData("/c/name", "")]
    [InlineData("/c/name?x=1", "?x=1")]
    [InlineData("/c/name/", "/")]
    public void UpstreamPathAndQuery_OrdinaryTarget_IsTheRestUnchanged(string target, string rest) =>
        Assert.Equal(rest, AgentRequestRules.UpstreamPathAndQuery(target, "c", "name"));

    [Property(MaxTest = 2000)]
    public Property UpstreamPathAndQuery_CharacterThatNormalisesToADotOrASlash_RefusedWheneverTheNormalisedPathClimbsOut() =>
        Prop.ForAll(Arb.From(AgentRequestGenerators.CompatibilityTargets()), sample =>
            (!AgentRequestGenerators.ClimbsOut(sample.Normalised) || AgentRequestRules.UpstreamPathAndQuery(sample.Target, "c", "name") is null)
            .Label($"{sample.Target} reads as {sample.Normalised} to a server that normalises"));

    [Fact]
    public void IsRefusedNonAscii_EveryCharacterNormalisingToOnlyDotsOrASeparator_IsRefused()
    {
        var alone = AgentRequestGenerators.CompatibilityDotsAndSlashes.Where(c => c.Nfkc.All(ch => ch is '.' or '/' or '\\')).ToList();
        Assert.Equal(10, alone.Count);
        Assert.All(alone, c => Assert.True(AgentRequestRules.IsRefusedNonAscii(new System.Text.Rune(c.CodePoint)), $"U+{c.CodePoint:X4} normalises to {c.Nfkc}"));
        Assert.All("é漢Ω✓".EnumerateRunes().Concat("😀".EnumerateRunes()), r => Assert.False(AgentRequestRules.IsRefusedNonAscii(r), r.ToString()));
    }

    /// <summary>
    /// Why the path rule goes by Unicode category and the generators by a table: under invariant globalization (how
    /// Latchkey and its tests run) <c>Normalize</c> leaves non-ASCII text as it is. If this starts to fail, NFKC works
    /// here, and the table in <see cref="AgentRequestGenerators"/> can be computed instead of kept.
    /// </summary>
    [Fact]
    public void Normalize_UnderInvariantGlobalization_DoesNothing() =>
        Assert.Equal("\uFE30\u2026\uFF0E", "\uFE30\u2026\uFF0E".Normalize(System.Text.NormalizationForm.FormKC));

    [Property(MaxTest = 1000)]
    public Property HoldsClientKey_KeyAnywhereInTheTargetPlainOrPercentEncoded_True() =>
        Prop.ForAll(Arb.From(KeyTargets()), target => AgentRequestRules.HoldsClientKey(target).Label(target));

    [Property(MaxTest = 1000)]
    public Property HoldsClientKey_OrdinaryTarget_False() =>
        Prop.ForAll(Arb.From(AgentRequestGenerators.OrdinaryRests()), rest => !AgentRequestRules.HoldsClientKey("/c/name" + rest));

    [Property(MaxTest = 1000)]
    public Property IsSafeHeaderValue_ControlCharacterAnywhere_IsRefused() =>
        Prop.ForAll(Arb.From(HeaderValues()), Arb.From(Gen.Elements('\r', '\n', '\0', '\x01', '\x1b', '\x7f')), Arb.From(Gen.Choose(0, int.MaxValue)), (value, control, at) =>
        {
            var i = at % (value.Length + 1);
            return !AgentRequestRules.IsSafeHeaderValue(value.Insert(i, control.ToString()));
        });

    [Property(MaxTest = 1000)]
    public Property IsSafeHeaderValue_OrdinaryValue_Passes() =>
        Prop.ForAll(Arb.From(HeaderValues()), value => AgentRequestRules.IsSafeHeaderValue(value));

    /// <summary>
    /// A client key in a request target: in the query or the path, after any text, with any of its characters
    /// percent-encoded once or twice (upper- or lower-case hex).
    /// </summary>
    private static Gen<string> KeyTargets() =>
        from key in Gen.Fresh(() => Latchkey.Store.ClientKeyFormat.Generate().Value)
        from encodings in Gen.ArrayOf(Gen.Choose(0, 4), Latchkey.Store.ClientKeyFormat.Length)
        from before in Gen.Elements("/c/name/v1?key=", "/c/name/v1/x?a=1&k=", "/c/name/v1?token%3D", "/c/name/v1/", "/c/name/v1/files/", "/c/name?x=a,", "/c/name/v1?q=\"")
        from after in Gen.Elements("", "&b=2", "/x", "%22", ";p=1")
        select before + string.Concat(key.Select((c, i) => encodings[i] switch
        {
            1 => "%" + ((int)c).ToString("X2", System.Globalization.CultureInfo.InvariantCulture),
            2 => "%" + ((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture),
            3 => "%25" + ((int)c).ToString("X2", System.Globalization.CultureInfo.InvariantCulture),
            _ => c.ToString(),
        })) + after;

    /// <summary>Header values as clients send them: printable ASCII, spaces and tabs, Latin-1 text (obs-text).</summary>
    private static Gen<string> HeaderValues() =>
        from length in Gen.Choose(0, 80)
        from chars in Gen.ArrayOf(Gen.OneOf(Gen.Choose(0x20, 0x7e), Gen.Constant(0x09), Gen.Choose(0xa0, 0xff)), length)
        select new string(chars.Select(c => (char)c).ToArray());
}
