using System.Text;
using FsCheck;
using FsCheck.Fluent;

namespace Latchkey.Testing;

/// <summary>
/// Request targets for the gateway's path rule: ways to write a climb out of the base path (every spelling of a
/// dot segment a server might decode), and ordinary API paths with the escapes real clients send. Shared with the
/// end-to-end attack tests, which send samples of both through a real gateway.
/// </summary>
internal static class AgentRequestGenerators
{
    /// <summary>One dot, plain or percent-encoded up to four times, in either case.</summary>
    private static readonly string[] Dots = [".", "%2e", "%2E", "%252e", "%252E", "%25252e", "%2525252E"];

    /// <summary>A separator a server may read as a path separator: slash or backslash, plain or encoded.</summary>
    private static readonly string[] Separators = ["/", "%2f", "%2F", "%252f", "%252F", "\\", "%5c", "%5C", "%255c", "%255C"];

    /// <summary>What may follow the dots inside the segment and still leave a dot segment to some server.</summary>
    private static readonly string[] Tails = ["", "", ";", ";x=1", ";jsessionid=0A1B", "%3b", "%3B", "%253b", "%20", "%2520"];

    /// <summary>Pieces of ordinary segments: names, versions, near-misses with dots, and escapes clients send.</summary>
    private static readonly string[] Pieces =
    [
        "v1", "messages", "models", "claude-3-5-sonnet", "claude-3.5", "file.txt", "a_b~c", "A-Z09", ".well-known",
        "x..y", "v1.2.3", "..a", "a..", "...b", "%2F", "%2f", "%20", "%25", "%3F", "%23", "%3B", "a;b=c", "!$&'()*+,=:@",
        "count_tokens", "chat", "completions",
    ];

    private static readonly string[] Words = ["é", "漢字", "😀", "Ωmega", "ü", "✓", "naïve"];

    private static readonly string[] QueryParts =
    [
        "a=1", "q=a%2Fb", "x=..%2F..", "path=../../etc", "s=%20", "u=%E2%9C%93", "b=a\\b", "h=%23", "limit=5", "after=a%2Fb", "e=", "%2e%2e",
    ];

    /// <summary>A target under <c>/c/name</c> whose path has a dot segment in some spelling: never to be forwarded.</summary>
    public static Gen<string> Traversals() =>
        from before in Segments(0, 2)
        from open in Gen.Elements(Separators)
        from count in Gen.Choose(1, 3)
        from dots in Gen.ArrayOf(Gen.Elements(Dots), count)
        from tail in Gen.Elements(Tails)
        from close in Gen.Elements([.. Separators, string.Empty])
        from after in Segments(0, 2)
        from query in Queries()
        select "/c/name/v1" + string.Concat(before.Select(s => "/" + s)) + open + string.Concat(dots) + tail
            + (close.Length == 0 ? string.Empty : close + string.Join("/", after)) + query;

    /// <summary>The part after <c>/c/name</c> of an ordinary request: forwarded byte for byte.</summary>
    public static Gen<string> OrdinaryRests() =>
        from count in Gen.Choose(0, 4)
        from segments in Gen.ArrayOf(Segment(), count)
        from slash in Gen.Elements(true, false)
        from query in Queries()
        select (count == 0 && slash ? "/" : string.Concat(segments.Select(s => "/" + s)) + (slash && count > 0 ? "/" : string.Empty)) + query;

    private static Gen<string> Segment() =>
        from count in Gen.Choose(1, 3)
        from pieces in Gen.ArrayOf(Gen.OneOf(Gen.Elements(Pieces), Encoded()), count)
        select string.Concat(pieces);

    private static Gen<string[]> Segments(int min, int max) =>
        from count in Gen.Choose(min, max)
        from segments in Gen.ArrayOf(Segment(), count)
        select segments;

    /// <summary>A word in UTF-8, percent-encoded with upper- or lower-case hex.</summary>
    private static Gen<string> Encoded() =>
        from word in Gen.Elements(Words)
        from upper in Gen.Elements(true, false)
        select string.Concat(Encoding.UTF8.GetBytes(word).Select(b => "%" + b.ToString(upper ? "X2" : "x2", System.Globalization.CultureInfo.InvariantCulture)));

    private static Gen<string> Queries() =>
        from has in Gen.Elements(true, false)
        from count in Gen.Choose(0, 3)
        from parts in Gen.ArrayOf(Gen.Elements(QueryParts), count)
        select has ? "?" + string.Join("&", parts) : string.Empty;
}
