using System.Text.Json.Nodes;
using FsCheck.Fluent;
using Latchkey.Tests.Gateway;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// A key holder (or a prompt-injected agent) writes a request path that climbs out of the credential's upstream
/// base path (<c>/c/NAME/v1/..%2Fadmin</c>), in every spelling a server might decode: encoded dots and slashes,
/// backslashes, <c>;</c> parameters, double encoding, mixed case. The gateway refuses each with
/// <c>400 path_invalid</c> and the upstream, which records the raw request line, sees nothing; ordinary paths reach
/// it byte for byte; and the route words match in any case without skipping a guard.
/// </summary>
public sealed class PathTraversalTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Theory]
    [InlineData("/v1/..%2Fadmin")]
    [InlineData("/v1/..%2fadmin")]
    [InlineData("/v1/%2e%2e/admin")]
    [InlineData("/v1/%2E%2E/admin")]
    [InlineData("/v1/.%2e/admin")]
    [InlineData("/v1/%2e./admin")]
    [InlineData("/v1/..%5Cadmin")]
    [InlineData("/v1/..\\admin")]
    [InlineData("/v1/..;/admin")]
    [InlineData("/v1/..;x=1/admin")]
    [InlineData("/v1/%252e%252e%252fadmin")]
    [InlineData("/v1/%252E%252E%252Fadmin")]
    [InlineData("/v1/%25252e%25252e/admin")]
    [InlineData("/v1/..%252fadmin")]
    [InlineData("/v1/%2e%2e%3b/admin")]
    [InlineData("/v1/..%20/admin")]
    [InlineData("/v1/%C0%AE%C0%AE/admin")]
    [InlineData("/v1/%EF%BC%8E%EF%BC%8E/admin")]
    [InlineData("/v1/../admin")]
    [InlineData("/v1/..")]
    [InlineData("/..%2F..%2Fadmin")]
    [InlineData("/v1/x#/../../admin")]
    public async Task Forward_EncodedTraversal_Returns400PathInvalidAndTheUpstreamSeesNothing(string path)
    {
        var (name, secret, key) = await CredentialAsync();

        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/c/{name}{path}", "x-api-key: " + key);

        Assert.True(answer.Status == 400, $"{path}: {answer.Status} {answer.Body}");
        Assert.Equal("path_invalid", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
    }

    /// <summary>
    /// Characters a server that applies Unicode compatibility normalisation (NFKC) reads as dots or separators, and
    /// look-alikes a Windows "best fit" code page conversion turns into a slash or backslash. Refused by their Unicode
    /// category, not by a list (a list missed U+FE30, U+2026 and U+FE19).
    /// </summary>
    [Theory]
    [InlineData("/v1/%EF%B8%B0/admin")] // U+FE30 presentation form for vertical two dot leader: ".."
    [InlineData("/v1/%E2%80%A6/admin")] // U+2026 horizontal ellipsis: "..."
    [InlineData("/v1/%EF%B8%99/admin")] // U+FE19 presentation form for vertical horizontal ellipsis: "..."
    [InlineData("/v1/%E2%80%A5/admin")] // U+2025 two dot leader: ".."
    [InlineData("/v1/%EF%B9%92%EF%B9%92/admin")] // U+FE52 small full stop twice
    [InlineData("/v1/..%EF%BC%8Fadmin")] // U+FF0F fullwidth solidus: "/"
    [InlineData("/v1/..%EF%B9%A8admin")] // U+FE68 small reverse solidus: ""
    [InlineData("/v1/..%E2%88%95admin")] // U+2215 division slash: "/" in best-fit code pages
    [InlineData("/v1/..%C2%A5admin")] // U+00A5 yen sign: "" in code page 932
    [InlineData("/v1/%25EF%25B8%25B0/admin")] // U+FE30 encoded twice
    public async Task Forward_CharacterThatNormalisesToDotsOrASeparator_Returns400PathInvalidAndTheUpstreamSeesNothing(string path)
    {
        var (name, secret, key) = await CredentialAsync();

        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/c/{name}{path}", "x-api-key: " + key);

        Assert.True(answer.Status == 400, $"{path}: {answer.Status} {answer.Body}");
        Assert.Equal("path_invalid", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
    }

    [Fact]
    public async Task Forward_RandomSpellingsOfADotSegment_AllRefusedAndTheUpstreamSeesNothing()
    {
        var (name, secret, key) = await CredentialAsync();

        foreach (var target in AgentRequestGenerators.Traversals().Sample(20, 60))
        {
            var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/c/{name}{target["/c/name".Length..]}", "x-api-key: " + key);
            Assert.True(answer.Status == 400, $"{target}: {answer.Status} {answer.Body}");
        }

        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
    }

    [Fact]
    public async Task Forward_OrdinaryPaths_ReachTheUpstreamByteForByte()
    {
        var (name, secret, key) = await CredentialAsync();
        string[] samples =
        [
            "/v1/messages", "/v1/models/claude-3-5-sonnet", "/v1/models?limit=5&after=a%2Fb", "/v1/files/a%2Fb/content",
            "/v1/%41%42/%7e?q=%2e%2e%2F", "/v1/caf%C3%A9/%E2%9C%93?q=%F0%9F%98%80", "/v1/search?q=a%20b&path=../../etc", "",
            "?x=1", "/", "/.well-known/oauth-authorization-server", "/v1/100%25", "/v1/{x}|^`",
        ];

        foreach (var rest in samples.Concat(AgentRequestGenerators.OrdinaryRests().Sample(20, 60)))
        {
            var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/c/{name}{rest}", "x-api-key: " + key);
            Assert.True(answer.Status is 200 or 404, $"{rest}: {answer.Status} {answer.Body}"); // 404: the upstream has no such path
            var seen = fixture.Upstream.Requests.Last(r => r.Credential == secret);
            Assert.Equal("/base" + rest, seen.RawTarget);
        }
    }

    [Fact]
    public async Task Forward_RouteWordInCapitals_IsRoutedExactlyLikeLowerCase()
    {
        var (name, secret, key) = await CredentialAsync();

        var upper = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/C/{name}/v1/messages?x=%2F", "x-api-key: " + key);

        Assert.True(upper.Status == 404, upper.Body); // the upstream's own 404 for /base/v1/messages: it was forwarded
        Assert.Equal(name, upper.Header("latchkey-credential"));
        Assert.Equal("/base/v1/messages?x=%2F", fixture.Upstream.Requests.Last(r => r.Credential == secret).RawTarget);
    }

    [Theory]
    [InlineData("GET", "/C/{0}/v1/messages")]
    [InlineData("GET", "/c/{0}/v1/messages")]
    [InlineData("POST", "/R/{0}/v1/messages")]
    [InlineData("GET", "/MCP/{0}")]
    [InlineData("GET", "/Mcp/{0}/x")]
    public async Task Forward_RouteWordInAnyCase_WithoutAKey_IsRefusedLikeLowerCase(string method, string target)
    {
        var (name, secret, _) = await CredentialAsync();

        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, method, string.Format(System.Globalization.CultureInfo.InvariantCulture, target, name), "Content-Length: 0");

        Assert.True(answer.Status == 401, $"{target}: {answer.Status} {answer.Body}");
        Assert.Equal("client_key_missing", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
    }

    [Fact]
    public async Task Route_RouterWordInCapitals_RoutesLikeLowerCase()
    {
        var (secret, _) = await fixture.AnthropicAsync("caps-target");
        await File.WriteAllTextAsync(Path.Combine(fixture.Gateway.HomePath, "routes.json"), """
            { "routers": { "caps": { "routes": [ { "model": "*", "targets": [ { "credential": "caps-target" } ] } ] } } }
            """);
        var key = await fixture.Gateway.CreateKeyAsync("caps-key", "caps");
        const string body = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";

        // The gateway process reloads routes.json within a second of its own clock.
        var answer = await RealTime.UntilAsync(
            async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/R/caps/v1/messages") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
                request.Headers.Add("x-api-key", key);
                return await fixture.Gateway.Http.SendAsync(request);
            },
            a => a.StatusCode != System.Net.HttpStatusCode.NotFound, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200), a => a.Dispose());

        using var _ = answer;
        Assert.True(answer.StatusCode == System.Net.HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());
        Assert.Equal("/v1/messages", fixture.Upstream.Requests.Last(r => r.Credential == secret).RawTarget);
    }

    /// <summary>A credential whose upstream has a base path (<c>UPSTREAM/base</c>), and a key for it.</summary>
    private async Task<(string Name, string Secret, string Key)> CredentialAsync()
    {
        var name = "trav-" + Guid.NewGuid().ToString("N")[..8];
        var secret = "sk-ant-" + Guid.NewGuid().ToString("N");
        fixture.Secrets.Add(secret);
        await fixture.Gateway.AddApiKeyAsync(name, fixture.Upstream.Url + "/base", secret, "--header", "x-api-key", "--format", "{secret}");
        return (name, secret, await fixture.Gateway.CreateKeyAsync(name + "-key", name));
    }
}
