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

    /// <summary>Header values as clients send them: printable ASCII, spaces and tabs, Latin-1 text (obs-text).</summary>
    private static Gen<string> HeaderValues() =>
        from length in Gen.Choose(0, 80)
        from chars in Gen.ArrayOf(Gen.OneOf(Gen.Choose(0x20, 0x7e), Gen.Constant(0x09), Gen.Choose(0xa0, 0xff)), length)
        select new string(chars.Select(c => (char)c).ToArray());
}
