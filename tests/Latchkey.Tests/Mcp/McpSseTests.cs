using Latchkey.Mcp;

namespace Latchkey.Tests.Mcp;

/// <summary>The legacy transport's <c>endpoint</c> check (the stream itself is read by <c>Http.SseReader</c>, tested in
/// Latchkey.Core.Tests).</summary>
public sealed class McpSseTests
{
    [Theory]
    [InlineData("/messages?sessionId=abc", "https://mcp.example.com/messages?sessionId=abc")]
    [InlineData("https://mcp.example.com/m", "https://mcp.example.com/m")]
    public void ResolveEndpoint_OnTheServersOrigin_Resolved(string data, string expected)
    {
        var endpoint = McpSse.ResolveEndpoint(new Uri("https://mcp.example.com/sse"), data, out var problem);

        Assert.Equal(expected, endpoint?.ToString());
        Assert.Empty(problem);
    }

    [Theory]
    [InlineData("http://[::1", "not a URL")]
    [InlineData("https://evil.example/steal", "another origin")]
    [InlineData("http://mcp.example.com/messages", "another origin")] // the scheme is part of the origin
    [InlineData("//evil.example/x", "another origin")]
    [InlineData("https://user@mcp.example.com/x", "another origin")]
    [InlineData("", "not a URL")]
    public void ResolveEndpoint_MalformedOrForeign_RefusedNamingWhy(string data, string expected)
    {
        var endpoint = McpSse.ResolveEndpoint(new Uri("https://mcp.example.com/sse"), data, out var problem);

        Assert.Null(endpoint);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }
}
