using System.Text.Json;
using Latchkey.OAuth;

namespace Latchkey.Tests.OAuth;

public sealed class JsonFieldsTests
{
    /// <summary>JSON allows a lone surrogate escape; .NET has no string for it. A server that sends one in any field
    /// a token answer or metadata document is read through must get "absent", not an exception.</summary>
    [Fact]
    public void Readers_LoneSurrogateEscape_ReadAsAbsentNotThrown()
    {
        using var document = JsonDocument.Parse("""{ "error_description": "\ud800", "expires_in": "\udfff", "scopes": ["a", "\ud800", "b"] }""");
        var root = document.RootElement;

        Assert.Null(root.String("error_description"));
        Assert.Null(root.Long("expires_in"));
        Assert.Equal(["a", "b"], root.Strings("scopes"));
    }

    [Fact]
    public void Readers_OrdinaryValues_ReadAsSent()
    {
        using var document = JsonDocument.Parse("""{ "s": "caf\u00e9 \ud83d\ude00", "n": 3600, "ns": "60", "b": true, "a": ["x", 1, "y"] }""");
        var root = document.RootElement;

        Assert.Equal("café 😀", root.String("s"));
        Assert.Equal(3600, root.Long("n"));
        Assert.Equal(60, root.Long("ns"));
        Assert.True(root.Bool("b"));
        Assert.Equal(["x", "y"], root.Strings("a"));
        Assert.Null(root.String("n"));
        Assert.Null(root.String("missing"));
    }
}
