using Latchkey.Http;

namespace Latchkey.Tests.Http;

public sealed class UrlPolicyTests
{
    [Theory]
    [InlineData("https://api.anthropic.com")]
    [InlineData("https://api.example.com:8443/v1")]
    [InlineData("http://localhost:8080")]
    [InlineData("http://127.0.0.1:9000/x")]
    [InlineData("http://127.9.9.9")]
    [InlineData("http://[::1]:3000")]
    [InlineData("http://app.localhost")]
    public void TryParse_AllowedUrl_Accepted(string url)
    {
        Assert.True(UrlPolicy.TryParse(url, out var uri, out var problem), problem);
        Assert.NotNull(uri);
    }

    [Theory]
    [InlineData("http://api.example.com", "plain http")]
    [InlineData("http://10.0.0.1", "plain http")]
    [InlineData("http://localhost.evil.com", "plain http")]
    [InlineData("ftp://example.com", "scheme")]
    [InlineData("file:///etc/passwd", "scheme")]
    [InlineData("javascript:alert(1)", "scheme")]
    [InlineData("api.example.com", "not an absolute URL")]
    [InlineData("/.well-known/oauth-protected-resource", "not an absolute URL")]
    [InlineData("", "not an absolute URL")]
    [InlineData("https://user:pw@example.com", "user name")]
    [InlineData("https://example.com/#frag", "fragment")]
    public void TryParse_UnsafeUrl_RefusedNamingTheProblem(string url, string expected)
    {
        Assert.False(UrlPolicy.TryParse(url, out _, out var problem));
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }
}
