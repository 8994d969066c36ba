using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// A key holder asks the gateway to forward <c>TRACE</c> (or another method outside what API clients use) to an
/// upstream that echoes the request it received: forwarded, the echo would carry the injected credential back to
/// the agent. The gateway answers <c>405</c> on every route and the upstream never hears of it.
/// </summary>
public sealed class TraceEchoTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    private const string Allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

    [Fact]
    public async Task Trace_ToAnUpstreamThatEchoesTrace_Returns405AndTheCredentialNeverComesBack()
    {
        var (secret, key) = await fixture.AnthropicAsync("trace-echo");
        // The upstream does echo TRACE, credential header included, as a server with tracing left on does.
        var direct = await RawHttp.SendAsync(fixture.Upstream.Url, "TRACE", "/v1/messages", "x-api-key: echo-marker");
        Assert.Equal(200, direct.Status);
        Assert.Contains("x-api-key: echo-marker", direct.Body, StringComparison.OrdinalIgnoreCase);

        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "TRACE", "/c/trace-echo/v1/messages", "x-api-key: " + key);

        Assert.Equal(405, answer.Status);
        Assert.Equal(Allow, answer.Header("Allow"));
        Assert.Equal("method_not_allowed", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.DoesNotContain(secret, answer.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(answer.Headers.Values, v => v.Contains(secret, StringComparison.Ordinal));
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
    }

    [Theory]
    [InlineData("TRACE", "/c/{0}/v1/messages")]
    [InlineData("TRACK", "/c/{0}/v1/messages")]
    [InlineData("trace", "/c/{0}/v1/messages")]
    [InlineData("CONNECT", "/c/{0}/v1/messages")]
    [InlineData("PROPFIND", "/c/{0}/v1/messages")]
    [InlineData("TRACE", "/c/{0}")]
    [InlineData("TRACE", "/r/{0}/v1/messages")]
    [InlineData("TRACE", "/mcp/{0}")]
    [InlineData("TRACE", "/healthz")]
    [InlineData("TRACE", "/nowhere")]
    public async Task AnyRoute_MethodOutsideTheAllowList_Returns405WithAllowAndNothingIsForwarded(string method, string target)
    {
        var name = "m-" + Guid.NewGuid().ToString("N")[..8];
        var (secret, key) = await fixture.AnthropicAsync(name);

        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, method, string.Format(System.Globalization.CultureInfo.InvariantCulture, target, name), "x-api-key: " + key);

        Assert.True(answer.Status == 405, $"{method} {target}: {answer.Status} {answer.Body}");
        Assert.Equal(Allow, answer.Header("Allow"));
        Assert.StartsWith("method_not_allowed;", answer.Header("latchkey-diagnostic"), StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
    }

    [Fact]
    public async Task AllowedMethods_StillForwarded()
    {
        var (secret, key) = await fixture.AnthropicAsync("methods-ok");

        foreach (var method in new[] { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" })
        {
            var answer = await RawHttp.SendAsync(fixture.Gateway.Url, method, "/c/methods-ok/echo/x", "x-api-key: " + key, "Content-Length: 0");
            Assert.True(answer.Status == 200, $"{method}: {answer.Status} {answer.Body}");
        }

        Assert.Equal(7, fixture.Upstream.Requests.Count(r => r.Credential == secret));
    }
}
