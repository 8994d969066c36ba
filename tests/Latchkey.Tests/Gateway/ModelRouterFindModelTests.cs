using System.Buffers;
using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.Gateway;
using Lookup = Latchkey.Gateway.ModelRouterRoute.ModelLookup;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// The router's model lookup: a forward-only reader over the kept body (in however many buffers it arrived) finds
/// the top-level <c>"model"</c>, and the rewrite replaces only that token's bytes.
/// </summary>
public sealed class ModelRouterFindModelTests
{
    [Property(MaxTest = 500)]
    public Property FindModel_AnyBodyInAnyBuffers_FindsTheTopLevelModelAndReplacesOnlyIt() =>
        Prop.ForAll(Arb.From(Bodies()), Arb.From(Gen.ArrayOf(Gen.Choose(0, 1000))), (body, cuts) =>
        {
            var (json, model) = body;
            var bytes = Encoding.UTF8.GetBytes(json);
            var (lookup, found, start, end) = ModelRouterRoute.FindModel(Split(bytes, cuts));
            if (lookup != Lookup.Found || found != model)
            {
                return false.Label($"{lookup} '{found}' in {json}");
            }

            using var original = RequestBody.FromBytes(bytes);
            using var rewritten = original.Replace(start, end, Encoding.UTF8.GetBytes("\"backup-\\u00e9\""));
            var sent = rewritten.Content.ToArray();
            using var parsed = JsonDocument.Parse(sent);
            return (parsed.RootElement.GetProperty("model").GetString() == "backup-é").Label("new model")
                .And(sent.AsSpan(0, (int)start).SequenceEqual(bytes.AsSpan(0, (int)start)).Label("bytes before"))
                .And(sent.AsSpan(sent.Length - (bytes.Length - (int)end)).SequenceEqual(bytes.AsSpan((int)end)).Label("bytes after"));
        });

    [Theory]
    [InlineData("""{"model":"a","x":1,"model":"b"}""", "Duplicate")]
    [InlineData("""{"model":"a","mod\u0065l":"b"}""", "Duplicate")]
    [InlineData("""{"messages":[{"model":"nested"}]}""", "Missing")]
    [InlineData("""{"model":42}""", "Missing")]
    [InlineData("""{"model":"a"} trailing""", "Missing")]
    [InlineData("""{"model":"a",""", "Missing")]
    [InlineData("""["model","a"]""", "Missing")]
    [InlineData("""{"model":"\ud800x"}""", "Missing")] // a lone surrogate: no string form
    [InlineData("""{"model":"\udc00"}""", "Missing")]
    [InlineData("", "Missing")]
    public void FindModel_NotExactlyOneModelString_IsRefused(string json, string expected) =>
        Assert.Equal(Enum.Parse<Lookup>(expected), ModelRouterRoute.FindModel(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(json))).Lookup);

    [Fact]
    public void FindModel_ModelLongerThanAnyModelName_IsRefused() =>
        Assert.Equal(Lookup.TooLong, ModelRouterRoute.FindModel(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($$"""{"model":"{{new string('m', ModelRouterRoute.MaxModelBytes + 1)}}"}"""))).Lookup);

    /// <summary>JSON objects with one top-level model (its key and value spelled plainly or with escapes) among
    /// members that mention "model" in nested objects and strings, with varied whitespace.</summary>
    private static Gen<(string Json, string Model)> Bodies()
    {
        var ws = Gen.Elements(string.Empty, " ", "\n  ", "\t");
        var key = Gen.Elements("\"model\"", "\"mod\\u0065l\"", "\"\\u006dodel\"");
        var model = Gen.Elements(("claude-sonnet-4-5", "\"claude-sonnet-4-5\""), ("gpt-4o", "\"gpt\\u002d4o\""), ("é-model", "\"\\u00e9-model\""), ("a\"b", "\"a\\\"b\""), ("漢", "\"漢\""));
        var member = Gen.Elements(
            "\"max_tokens\":64",
            "\"messages\":[{\"role\":\"user\",\"content\":\"say \\\"model\\\":\\\"x\\\"\"}]",
            "\"metadata\":{\"model\":\"nested\",\"list\":[1,2,{\"model\":\"deeper\"}]}",
            "\"stream\":true",
            "\"models\":\"not it\"",
            "\"model_hint\":null");
        return from before in Gen.ArrayOf(member)
               from after in Gen.ArrayOf(member)
               from k in key
               from m in model
               from w1 in ws
               from w2 in ws
               let members = before.Select(b => b + ",").Concat([$"{w1}{k}{w2}:{w1}{m.Item2}{w2}"]).Concat(after.Select(a => "," + a))
               select ($"{w1}{{{string.Concat(members)}}}{w2}", m.Item1);
    }

    /// <summary>The bytes as a sequence of several buffers, cut at the given offsets.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes, int[] cuts)
    {
        var offsets = cuts.Select(c => c % (bytes.Length + 1)).Append(0).Append(bytes.Length).Distinct().Order().ToList();
        return RequestBody.Sequence([.. offsets.Zip(offsets.Skip(1), (from, to) => (ReadOnlyMemory<byte>)bytes.AsMemory(from, to - from))]);
    }
}
