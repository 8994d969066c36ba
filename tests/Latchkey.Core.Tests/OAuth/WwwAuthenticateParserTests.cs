using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.OAuth;

namespace Latchkey.Tests.OAuth;

/// <summary>
/// The parser's test vectors (expected results written as <see cref="Render"/> shows them) and three properties.
/// The core vectors include inputs the official MCP SDKs misparse (a comma or a parameter name inside a quoted
/// string, several challenges on one line, spaces around <c>=</c>).
/// </summary>
public sealed class WwwAuthenticateParserTests
{
    /// <summary>Renders a result as <c>Scheme{name=value,…}</c> or <c>Scheme&lt;token68&gt;</c>, joined by "; ",
    /// then the dropped reasons in brackets.</summary>
    internal static string Render(WwwAuthenticateResult result)
    {
        var challenges = result.Challenges.Select(c => c.Token68 is not null
            ? $"{c.Scheme.ToLowerInvariant()}<{c.Token68}>"
            : $"{c.Scheme.ToLowerInvariant()}{{{string.Join(",", c.Parameters.Select(p => $"{p.Key.ToLowerInvariant()}={p.Value}"))}}}");
        var dropped = result.Dropped.Count == 0 ? string.Empty : $" [{string.Join(",", result.Dropped.Select(d => d.Reason))}]";
        return string.Join("; ", challenges) + dropped;
    }

    [Theory]
    // Core vectors: ordinary challenges, and the inputs that simpler parsers get wrong.
    [InlineData("Bearer realm=\"x\", error=\"insufficient_scope\", scope=\"a b\"", "bearer{realm=x,error=insufficient_scope,scope=a b}")]
    [InlineData("Basic realm=\"a\", Bearer resource_metadata=\"https://rs/prm\"", "basic{realm=a}; bearer{resource_metadata=https://rs/prm}")]
    [InlineData("Bearer error_description=\"a, b, scope=evil\", scope=\"read\"", "bearer{error_description=a, b, scope=evil,scope=read}")]
    [InlineData("Bearer error_description=\"see resource_metadata=https://evil.example/x\", resource_metadata=\"https://rs/prm\"", "bearer{error_description=see resource_metadata=https://evil.example/x,resource_metadata=https://rs/prm}")]
    [InlineData("Bearer realm=\"say \\\"hi\\\"\", scope=\"read\"", "bearer{realm=say \"hi\",scope=read}")]
    [InlineData("Bearer resource_metadata = \"https://rs/prm\"", "bearer{resource_metadata=https://rs/prm}")]
    [InlineData("bearer SCOPE=\"x\"", "bearer{scope=x}")]
    [InlineData("Bearer notscope=\"x\", scope=\"y\"", "bearer{notscope=x,scope=y}")]
    [InlineData("Bearer scope=\"\"", "bearer{scope=}")]
    [InlineData("Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\", Bearer scope=\"x\"", "newauth{realm=apps,type=1,title=Login to \"apps\"}; bearer{scope=x}")]
    [InlineData("DPoP algs=\"ES256\", Bearer resource_metadata=\"https://rs/prm\"", "dpop{algs=ES256}; bearer{resource_metadata=https://rs/prm}")]
    [InlineData("Bearer, Basic realm=\"a\"", "bearer{}; basic{realm=a}")]
    [InlineData("Negotiate YIIB3g==", "negotiate<YIIB3g==>")]
    [InlineData("Bearer realm=\"unterminated", " [unterminated_quote]")]
    [InlineData("Bearer realm=\"OAuth\", resource_metadata=\"https://rs/a\", error=\"invalid_token\", resource_metadata=\"https://rs/a/mcp\"", " [duplicate_param]")]
    [InlineData("Bearer resource_metadata=\"https://rs/.well-known/oauth-protected-resource?qualifier=x\"", "bearer{resource_metadata=https://rs/.well-known/oauth-protected-resource?qualifier=x}")]
    // Grammar corners, adapted from the greenbytes HTTP authentication test cases.
    [InlineData("Basic realm=\"foo\"", "basic{realm=foo}")]
    [InlineData("Basic\r\n realm=\"foo\"", "basic{realm=foo}")]
    [InlineData("BASIC REALM=\"foo\"", "basic{realm=foo}")]
    [InlineData("Basic realm=foo", "basic{realm=foo}")]
    [InlineData("Basic realm='foo'", "basic{realm='foo'}")]
    [InlineData("Basic , realm=\"foo\"", "basic{realm=foo}")]
    [InlineData("Basic, realm=\"foo\"", "basic{} [param_without_scheme]")]
    [InlineData("Basic", "basic{}")]
    [InlineData("Basic realm=\"foo\", realm=\"bar\"", " [duplicate_param]")]
    [InlineData("Basic realm = \"foo\"", "basic{realm=foo}")]
    [InlineData("Basic realm=\"\\f\\o\\o\"", "basic{realm=foo}")]
    [InlineData("Basic realm=\"\\\"foo\\\"\"", "basic{realm=\"foo\"}")]
    [InlineData("Basic realm=\"foo\", bar=\"xyz\",, a=b,,,c=d", "basic{realm=foo,bar=xyz,a=b,c=d}")]
    [InlineData("Basic realm=\"basic\", Newauth realm=\"newauth\"", "basic{realm=basic}; newauth{realm=newauth}")]
    [InlineData(",Basic realm=\"basic\"", "basic{realm=basic}")]
    [InlineData("Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\", Basic realm=\"simple\"", "newauth{realm=apps,type=1,title=Login to \"apps\"}; basic{realm=simple}")]
    [InlineData("Newauth realm=\"Newauth Realm\", basic=foo, Basic realm=\"Basic Realm\"", "newauth{realm=Newauth Realm,basic=foo}; basic{realm=Basic Realm}")]
    [InlineData("Basic realm=\"basic\", Newauth", "basic{realm=basic}; newauth{}")]
    [InlineData("A, B", "a{}; b{}")]
    [InlineData("Basic foo=\"realm=nottherealm\", realm=\"basic\"", "basic{foo=realm=nottherealm,realm=basic}")]
    [InlineData("Basic nottherealm=\"nottherealm\", realm=\"basic\"", "basic{nottherealm=nottherealm,realm=basic}")]
    [InlineData("Basic realm=\"basic", " [unterminated_quote]")]
    [InlineData("Newauth param=\"value\"", "newauth{param=value}")]
    // token68 versus auth-param
    [InlineData("Foo abc=", "foo<abc=>")]
    [InlineData("Foo abc==, Bar x=y", "foo<abc==>; bar{x=y}")]
    [InlineData("Foo a=b", "foo{a=b}")]
    [InlineData("Foo a/b+c=", "foo<a/b+c=>")]
    [InlineData("Foo abc, x=y", "foo<abc> [param_without_scheme]")]
    [InlineData("Foo abc def", " [unexpected_token]")]
    [InlineData("Bearer realm=\"a\\\"", " [unterminated_quote]")]
    [InlineData("", "")]
    [InlineData(", ,", "")]
    // Challenges MCP servers send (the parse part; the action taken is tested with discovery and step-up).
    [InlineData("DPoP algs=\"ES256\", resource_metadata=\"https://rs/prm\"", "dpop{algs=ES256,resource_metadata=https://rs/prm}")]
    [InlineData("Bearer realm=\"a\", Bearer realm=\"b\", resource_metadata=\"https://rs/prm\"", "bearer{realm=a}; bearer{realm=b,resource_metadata=https://rs/prm}")]
    [InlineData("Bearer error=\"invalid_token\", error_description=\"bad \"x\" token\", resource_metadata=\"https://rs/prm\"", " [unexpected_token]")]
    [InlineData("Bearer scope=\"a b\", scope=\"c\"", " [duplicate_param]")]
    public void Parse_Vector_MatchesExpected(string input, string expected)
    {
        Assert.Equal(expected, Render(WwwAuthenticateParser.Parse(input)));
    }

    [Fact]
    public void Parse_TwoFieldLines_CombinedAsOneList()
    {
        var result = WwwAuthenticateParser.Parse(["Basic realm=\"a\"", "Bearer resource_metadata=\"https://rs/prm\", scope=\"files:read\""]);

        Assert.Equal("basic{realm=a}; bearer{resource_metadata=https://rs/prm,scope=files:read}", Render(result));
        Assert.Equal("https://rs/prm", result.ResourceMetadata);
        Assert.Equal(["files:read"], result.Scopes);
    }

    [Fact]
    public void ResourceChallenge_OnlyDPoPCarriesMetadata_TakenFromDPoP()
    {
        var result = WwwAuthenticateParser.Parse("Bearer realm=\"x\", DPoP algs=\"ES256\", resource_metadata=\"https://rs/prm\"");

        Assert.Equal("https://rs/prm", result.ResourceMetadata);
        Assert.True(result.ResourceChallenge!.IsScheme("dpop"));
    }

    [Fact]
    public void ResourceChallenge_TwoBearers_FirstWithMetadataSuppliesErrorAndScope()
    {
        var result = WwwAuthenticateParser.Parse("Bearer realm=\"a\", error=\"invalid_token\", Bearer resource_metadata=\"https://rs/prm\", error=\"insufficient_scope\", scope=\"files:read files:write\"");

        Assert.Equal("https://rs/prm", result.ResourceMetadata);
        Assert.Equal("insufficient_scope", result.Error);
        Assert.Equal(["files:read", "files:write"], result.Scopes);
    }

    [Fact]
    public void Scopes_EmptyScope_TreatedAsAbsent()
    {
        Assert.Empty(WwwAuthenticateParser.Parse("Bearer scope=\"\"").Scopes);
    }

    [Fact]
    public void Parse_SentryDuplicateResourceMetadata_NoChallengeSoWellKnownDiscoveryFollows()
    {
        var result = WwwAuthenticateParser.Parse("Bearer realm=\"OAuth\", resource_metadata=\"https://mcp.sentry.dev/.well-known/oauth-protected-resource\", error=\"invalid_token\", error_description=\"Missing or invalid access token\", resource_metadata=\"https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp\"");

        Assert.Empty(result.Challenges);
        Assert.Null(result.ResourceMetadata);
        Assert.Equal("duplicate_param", Assert.Single(result.Dropped).Reason);
    }

    [Fact]
    public void Parse_20KiBOfParameters_TooLarge()
    {
        var input = string.Concat(Enumerable.Repeat("a=b,", 5 * 1024));

        var result = WwwAuthenticateParser.Parse(input);

        Assert.Empty(result.Challenges);
        Assert.Equal("too_large", Assert.Single(result.Dropped).Reason);
    }

    [Fact]
    public void Parse_MoreThanMaxParameters_TooLarge()
    {
        var input = "Bearer " + string.Join(", ", Enumerable.Range(0, 65).Select(i => $"p{i}=v"));

        Assert.Equal("too_large", Assert.Single(WwwAuthenticateParser.Parse(input).Dropped).Reason);
    }

    [Fact]
    public void Parse_MoreThanMaxChallenges_TooLarge()
    {
        var input = string.Join(", ", Enumerable.Range(0, 33).Select(i => $"S{i}"));

        Assert.Equal("too_large", Assert.Single(WwwAuthenticateParser.Parse(input).Dropped).Reason);
    }

    [Theory]
    [InlineData("Basic realm=\"a\", Bearer resource_metadata=\"https://rs/prm\"")]
    [InlineData("Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\", Bearer scope=\"x\"")]
    [InlineData("DPoP algs=\"ES256\", Bearer resource_metadata=\"https://rs/prm\"")]
    [InlineData("Bearer, Basic realm=\"a\"")]
    [InlineData("Negotiate YIIB3g==")]
    public void Parse_SchemeSplitting_AgreesWithDotNetHeaders(string input)
    {
        using var response = new HttpResponseMessage();
        response.Headers.TryAddWithoutValidation("WWW-Authenticate", input);
        var dotnet = response.Headers.WwwAuthenticate.Select(h => h.Scheme.ToLowerInvariant());

        Assert.Equal(dotnet, WwwAuthenticateParser.Parse(input).Challenges.Select(c => c.Scheme.ToLowerInvariant()));
    }

    // Random input never throws and never hangs.
    [Property(MaxTest = 500)]
    public bool Parse_RandomInput_NeverThrowsAndReturnsInLinearTime(NonNegativeInt seed, PositiveInt length)
    {
        const string alphabet = "\"\\,= \t=/+\"\\,=abcXYZ09-._~!#'\r\n";
        var random = new Random(seed.Get);
        var chars = new char[Math.Min(length.Get * 37, 32 * 1024)];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = alphabet[random.Next(alphabet.Length)];
        }

        var stopwatch = Stopwatch.StartNew();
        var result = WwwAuthenticateParser.Parse(new string(chars));
        return result is not null && stopwatch.ElapsedMilliseconds < 1000;
    }

    // Generated challenge trees round-trip through a canonical writer, however the value is split across lines.
    [Property(MaxTest = 300)]
    public Property Parse_WrittenChallenges_RoundTripAndSplitInvariant() =>
        Prop.ForAll(Arb.From(ChallengeTrees()), Arb.From(Gen.Choose(0, int.MaxValue)), (challenges, seed) =>
        {
            var random = new Random(seed);
            var lines = Write(challenges, random);
            var expected = string.Join("; ", challenges.Select(RenderTree));
            var joined = Render(WwwAuthenticateParser.Parse(string.Join(", ", lines)));
            var split = Render(WwwAuthenticateParser.Parse(lines));
            return joined == expected && split == expected;
        });

    private sealed record TreeChallenge(string Scheme, string? Token68, (string Name, string Value, bool Quote)[] Parameters);

    private static string RenderTree(TreeChallenge c) => c.Token68 is not null
        ? $"{c.Scheme.ToLowerInvariant()}<{c.Token68}>"
        : $"{c.Scheme.ToLowerInvariant()}{{{string.Join(",", c.Parameters.Select(p => $"{p.Name.ToLowerInvariant()}={p.Value}"))}}}";

    private static Gen<TreeChallenge[]> ChallengeTrees()
    {
        var token = Gen.Elements("Bearer", "Basic", "DPoP", "realm", "scope", "a1", "x-y", "t.k", "Z_9", "it's", "b~c");
        var value = Gen.Elements("plain", "with space", "q\"uote", "back\\slash", "a, b=c", "", "https://rs/prm?x=1", "é漢");
        var token68 = Gen.Elements("abc", "YIIB3g==", "a/b+c=", "x-y_z.~", "QQ==");
        var parameter = from n in Gen.Elements("realm", "scope", "error", "resource_metadata", "a1", "x-y")
                        from v in value
                        from q in Gen.Elements(true, false)
                        select (n, v, q || v.Length == 0 || v.Any(ch => !char.IsAsciiLetterOrDigit(ch)));
        var parameters = from count in Gen.Choose(0, 4)
                         from list in Gen.ArrayOf(parameter, count)
                         select list.DistinctBy(p => p.n.ToLowerInvariant()).ToArray();
        var challenge = from scheme in token
                        from useToken68 in Gen.Frequency((1, Gen.Constant(true)), (4, Gen.Constant(false)))
                        from t68 in token68
                        from ps in parameters
                        select useToken68 ? new TreeChallenge(scheme, t68, []) : new TreeChallenge(scheme, null, ps);
        return from count in Gen.Choose(1, 4)
               from list in Gen.ArrayOf(challenge, count)
               select list;
    }

    /// <summary>Writes challenges with random whitespace around "=", random empty elements, and a random split into field lines.</summary>
    private static List<string> Write(TreeChallenge[] challenges, Random random)
    {
        string Ws() => random.Next(3) switch { 0 => string.Empty, 1 => " ", _ => " \t" };
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (var c in challenges)
        {
            if (line.Length > 0)
            {
                if (random.Next(3) == 0)
                {
                    lines.Add(line.ToString());
                    line.Clear();
                }
                else
                {
                    line.Append(',').Append(random.Next(2) == 0 ? ", " : " ");
                }
            }

            line.Append(c.Scheme);
            if (c.Token68 is not null)
            {
                line.Append(' ').Append(c.Token68);
                continue;
            }

            for (var p = 0; p < c.Parameters.Length; p++)
            {
                var (name, value, quote) = c.Parameters[p];
                line.Append(p == 0 ? " " : random.Next(2) == 0 ? ", " : " ,, ");
                var written = quote ? "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : value;
                line.Append(name).Append(Ws()).Append('=').Append(Ws()).Append(written);
            }
        }

        lines.Add(line.ToString());
        return lines;
    }
}
