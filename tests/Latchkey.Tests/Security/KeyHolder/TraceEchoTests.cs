using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// A key holder asks the gateway to forward <c>TRACE</c> (or another method outside what API clients use) to an
/// upstream that echoes the request it received: forwarded, the echo would carry the injected credential back to
/// the agent. The gateway answers <c>405</c> on every route and the upstream never hears of it. The same holds for a
/// method named in a method-override header (<c>X-HTTP-Method-Override: TRACE</c> on a <c>POST</c>), which many
/// frameworks honour.
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

    [Theory]
    [InlineData("X-HTTP-Method-Override", "TRACE")]
    [InlineData("X-HTTP-Method", "TRACE")]
    [InlineData("X-Method-Override", "TRACE")]
    [InlineData("x-http-method-override", "trace")]
    [InlineData("X-HTTP-Method-Override", "TRACK")]
    [InlineData("X-HTTP-Method-Override", "CONNECT")]
    [InlineData("X-HTTP-Method-Override", "PATCH, TRACE")]
    [InlineData("X-HTTP-Method-Override", "PROPFIND")]
    public async Task MethodOverride_NamingAMethodOutsideTheAllowList_Returns405AndAnUpstreamThatHonoursItNeverEchoes(string header, string method)
    {
        await using var upstream = await OverrideHonouringUpstreamAsync();
        var name = "ovr-" + Guid.NewGuid().ToString("N")[..8];
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
        await fixture.Gateway.AddApiKeyAsync(name, upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await fixture.Gateway.CreateKeyAsync(name + "-key", name);
        // The upstream does treat the override as the method, and echoes a TRACE, credential included.
        var direct = await RawHttp.SendWithBodyAsync(upstream.Url, "POST", "/v1/messages", "{}", $"{header}: {method}", "x-api-key: echo-marker");
        Assert.Contains("x-api-key: echo-marker", direct.Body, StringComparison.OrdinalIgnoreCase);

        var answer = await RawHttp.SendWithBodyAsync(fixture.Gateway.Url, "POST", $"/c/{name}/v1/messages", "{}", "x-api-key: " + key, $"{header}: {method}");

        Assert.True(answer.Status == 405, $"{header}: {method}: {answer.Status} (the body is not shown: an echo would hold the secret)");
        Assert.Equal(Allow, answer.Header("Allow"));
        Assert.Equal("method_not_allowed", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.Contains(header, (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["message"], StringComparison.OrdinalIgnoreCase);
        SecretAssert.Absent(answer.Body + string.Join("\n", answer.Headers.Values), "the answer", ("API key", secret));
        Assert.DoesNotContain(upstream.Requests, r => r.Credential == secret);
    }

    [Fact]
    public async Task MethodOverride_NamingAnAllowedMethod_StillForwarded()
    {
        await using var upstream = await OverrideHonouringUpstreamAsync();
        var name = "ovr-ok-" + Guid.NewGuid().ToString("N")[..8];
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
        await fixture.Gateway.AddApiKeyAsync(name, upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await fixture.Gateway.CreateKeyAsync(name + "-key", name);

        var answer = await RawHttp.SendWithBodyAsync(fixture.Gateway.Url, "POST", $"/c/{name}/v1/messages", "{}", "x-api-key: " + key, "X-HTTP-Method-Override: PATCH");

        Assert.True(answer.Status == 200, $"{answer.Status} {answer.Body}");
        Assert.Equal("PATCH", Assert.Single(upstream.Requests, r => r.Credential == secret).Headers["X-HTTP-Method-Override"]);
    }

    /// <summary>An upstream that reads the method from any of the override headers, as many frameworks do, and answers
    /// any method but the usual ones by echoing the request, as a server with TRACE left on does.</summary>
    private static async Task<SimulatedUpstream> OverrideHonouringUpstreamAsync()
    {
        var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = context =>
            {
                var method = new[] { "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override" }
                    .Select(h => context.Request.Headers[h].ToString()).FirstOrDefault(v => v.Length > 0) ?? context.Request.Method;
                context.Response.StatusCode = 200;
                if (method.Split(',', StringSplitOptions.TrimEntries).All(m => Allow.Contains(m, StringComparison.OrdinalIgnoreCase)))
                {
                    return context.Response.WriteAsync("{}", context.RequestAborted);
                }

                var echo = new StringBuilder($"{method} {context.Request.Path} HTTP/1.1\r\n");
                foreach (var (name, value) in context.Request.Headers)
                {
                    echo.Append(name).Append(": ").Append(value.ToString()).Append("\r\n");
                }

                context.Response.ContentType = "message/http";
                return context.Response.WriteAsync(echo.ToString(), context.RequestAborted);
            },
        });
        await upstream.StartAsync();
        return upstream;
    }
}
