using System.Net;
using System.Text;
using Latchkey.OAuth;

namespace Latchkey.Tests.OAuth;

/// <summary>Discovery orders (resource metadata, then authorization-server metadata) and the checks that refuse a
/// lying or broken server (the RFC 9728 and RFC 8414 identifier checks, URL safety, size limits).</summary>
public sealed class DiscoveryTests
{
    private const string Issuer = "http://127.0.0.1:7000";

    /// <summary>Answers by URL; anything unlisted is 404. Records the URLs asked for, in order.</summary>
    private sealed class Site : HttpMessageHandler
    {
        public Dictionary<string, Func<HttpResponseMessage>> Pages { get; } = new(StringComparer.Ordinal);

        public List<string> Asked { get; } = [];

        public void Json(string url, string json, HttpStatusCode status = HttpStatusCode.OK) =>
            Pages[url] = () => new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var url = request.RequestUri!.AbsoluteUri;
            Asked.Add(url);
            return Task.FromResult(Pages.TryGetValue(url, out var page) ? page() : new HttpResponseMessage(HttpStatusCode.NotFound));
        }
    }

    private static string AsMetadata(string issuer = Issuer, string pkce = "[\"S256\"]", string extra = "") =>
        $$"""{"issuer":"{{issuer}}","authorization_endpoint":"{{Issuer}}/auth","token_endpoint":"{{Issuer}}/token","code_challenge_methods_supported":{{pkce}},"authorization_response_iss_parameter_supported":true{{extra}}}""";

    private static Discovery NewDiscovery(Site site) => new(new OAuthHttp(site));

    [Fact]
    public void IssuerMetadataUrls_PathIssuer_InMcpOrder()
    {
        var urls = Discovery.IssuerMetadataUrls(new Uri("https://auth.example.com/tenant1")).Select(u => u.AbsoluteUri);

        Assert.Equal(
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ],
            urls);
    }

    [Fact]
    public void IssuerMetadataUrls_RootIssuer_Rfc8414ThenOidc()
    {
        Assert.Equal(
            ["https://auth.example.com/.well-known/oauth-authorization-server", "https://auth.example.com/.well-known/openid-configuration"],
            Discovery.IssuerMetadataUrls(new Uri("https://auth.example.com")).Select(u => u.AbsoluteUri));
    }

    [Fact]
    public void ResourceMetadataUrls_PathAndQuery_PathInsertedKeepsQueryThenRoot()
    {
        Assert.Equal(
            ["https://rs.example/.well-known/oauth-protected-resource/public/mcp?tenant=a", "https://rs.example/.well-known/oauth-protected-resource"],
            Discovery.ResourceMetadataUrls(new Uri("https://rs.example/public/mcp?tenant=a")).Select(u => u.AbsoluteUri));
    }

    [Theory]
    [InlineData("https://h", "https://h/", true)]
    [InlineData("https://h/", "https://h", true)]
    [InlineData("https://h/mcp", "https://h/mcp", true)]
    [InlineData("https://h/mcp/", "https://h/mcp", false)]
    [InlineData("https://h/mcp", "https://h/mcp2", false)]
    [InlineData("https://h", "https://h/mcp", false)]
    [InlineData("https://H/mcp", "https://h/mcp", false)]
    public void SameResource_ExactExceptRootSlash(string declared, string requested, bool same)
    {
        Assert.Equal(same, Discovery.SameResource(declared, new Uri(requested)));
    }

    [Fact]
    public async Task DiscoverIssuer_PathIssuerOnlyOidcPathAppend_FoundAfterTwo404s()
    {
        var site = new Site();
        site.Json($"{Issuer}/tenant1/.well-known/openid-configuration", AsMetadata(Issuer + "/tenant1"));

        var metadata = await NewDiscovery(site).DiscoverIssuerAsync(Issuer + "/tenant1", IssuerQuirks.None, default);

        Assert.Equal(Issuer + "/tenant1", metadata.Issuer);
        Assert.Equal(3, site.Asked.Count);
        Assert.True(metadata.IssParameterSupported);
    }

    [Fact]
    public async Task DiscoverIssuer_DocumentNamesAnotherIssuer_RefusedAsMismatch()
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", AsMetadata("https://evil.example"));

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));

        Assert.Equal("issuer_mismatch", ex.Code);
        Assert.Contains("evil.example", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[\"plain\"]")]
    [InlineData("[]")]
    public async Task DiscoverIssuer_NoS256_Refused(string methods)
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", AsMetadata(pkce: methods));

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));

        Assert.Equal("pkce_s256_unsupported", ex.Code);
    }

    [Fact]
    public async Task DiscoverIssuer_MethodsAbsentWithQuirk_AcceptedAndQuirkRecorded()
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", $$"""{"issuer":"{{Issuer}}","token_endpoint":"{{Issuer}}/token"}""");

        await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));
        var metadata = await NewDiscovery(site).DiscoverIssuerAsync(Issuer, new IssuerQuirks { AssumePkceS256 = true }, default);

        Assert.Equal(["assume_pkce_s256"], metadata.QuirksApplied);
    }

    [Fact]
    public async Task DiscoverIssuer_InvalidJson_RefusedWithItsReason()
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", "{\"issuer\": ");

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));

        Assert.Equal("invalid_json", ex.Code);
    }

    [Fact]
    public async Task DiscoverIssuer_OversizedDocument_RefusedAsTooLarge()
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", AsMetadata(extra: $",\"padding\":\"{new string('x', 70_000)}\""));

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));

        Assert.Equal("too_large", ex.Code);
    }

    [Fact]
    public async Task DiscoverIssuer_ServerError_StopsNamingTheUrl()
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", "{}", HttpStatusCode.InternalServerError);

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));

        Assert.Equal("discovery_failed", ex.Code);
        Assert.Contains($"{Issuer}/.well-known/oauth-authorization-server", ex.Message, StringComparison.Ordinal);
        Assert.Single(site.Asked);
    }

    [Fact]
    public async Task DiscoverIssuer_PlainHttpOnAnotherHost_RefusedBeforeAnyRequest()
    {
        var site = new Site();

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync("http://auth.example.com", IssuerQuirks.None, default));

        Assert.Equal("issuer_invalid", ex.Code);
        Assert.Empty(site.Asked);
    }

    [Fact]
    public async Task DiscoverIssuer_EndpointOnPlainHttpElsewhere_Refused()
    {
        var site = new Site();
        site.Json($"{Issuer}/.well-known/oauth-authorization-server", $$"""{"issuer":"{{Issuer}}","token_endpoint":"http://tokens.example.com/token","code_challenge_methods_supported":["S256"]}""");

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverIssuerAsync(Issuer, IssuerQuirks.None, default));

        Assert.Equal("metadata_invalid", ex.Code);
        Assert.Contains("token_endpoint", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiscoverResource_ChallengeUrlFirst_UsedAsGiven()
    {
        var site = new Site();
        site.Json("http://127.0.0.1:7001/custom/prm", $$"""{"resource":"http://127.0.0.1:7001/mcp","authorization_servers":["{{Issuer}}"],"scopes_supported":["mcp:tools"]}""");

        var prm = await NewDiscovery(site).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), "http://127.0.0.1:7001/custom/prm", default);

        Assert.Equal("http://127.0.0.1:7001/mcp", prm.Resource);
        Assert.Equal(["mcp:tools"], prm.ScopesSupported);
        Assert.Equal(["http://127.0.0.1:7001/custom/prm"], site.Asked);
    }

    [Fact]
    public async Task DiscoverResource_NoChallenge_PathInsertedThenRoot()
    {
        var site = new Site();
        site.Json("http://127.0.0.1:7001/.well-known/oauth-protected-resource", $$"""{"resource":"http://127.0.0.1:7001/mcp","authorization_servers":["{{Issuer}}"]}""");

        var prm = await NewDiscovery(site).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), null, default);

        Assert.Equal(Issuer, prm.AuthorizationServers[0]);
        Assert.Equal(["http://127.0.0.1:7001/.well-known/oauth-protected-resource/mcp", "http://127.0.0.1:7001/.well-known/oauth-protected-resource"], site.Asked);
    }

    [Fact]
    public async Task DiscoverResource_RootDocumentNamingTheOrigin_AcceptedAndBindsTheOrigin()
    {
        var site = new Site();
        site.Json("http://127.0.0.1:7001/.well-known/oauth-protected-resource", $$"""{"resource":"http://127.0.0.1:7001","authorization_servers":["{{Issuer}}"]}""");

        var prm = await NewDiscovery(site).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), null, default);

        Assert.Equal("http://127.0.0.1:7001", prm.Resource); // the identifier the root URL was made from (RFC 9728 §3.3)
        Assert.Equal(Issuer, prm.AuthorizationServers[0]);
    }

    [Fact]
    public async Task DiscoverResource_RootDocumentNamingAnotherPath_RefusedAsMismatch()
    {
        var site = new Site();
        site.Json("http://127.0.0.1:7001/.well-known/oauth-protected-resource", $$"""{"resource":"http://127.0.0.1:7001/other","authorization_servers":["{{Issuer}}"]}""");

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), null, default));

        Assert.Equal("resource_mismatch", ex.Code);
        Assert.Contains("http://127.0.0.1:7001/mcp or http://127.0.0.1:7001", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DiscoverResource_PathDocumentNamingTheOrigin_RefusedAsMismatch()
    {
        var site = new Site();
        site.Json("http://127.0.0.1:7001/.well-known/oauth-protected-resource/mcp", $$"""{"resource":"http://127.0.0.1:7001","authorization_servers":["{{Issuer}}"]}""");

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), null, default));

        Assert.Equal("resource_mismatch", ex.Code);
    }

    [Fact]
    public async Task DiscoverResource_DocumentForAnotherResource_RefusedAsMismatch()
    {
        var site = new Site();
        site.Json("http://127.0.0.1:7001/.well-known/oauth-protected-resource/mcp", $$"""{"resource":"http://127.0.0.1:7001/other","authorization_servers":["{{Issuer}}"]}""");

        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(site).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), null, default));

        Assert.Equal("resource_mismatch", ex.Code);
    }

    [Fact]
    public async Task DiscoverResource_RelativeChallengeUrl_RefusedInStrictMode()
    {
        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(new Site()).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), "/.well-known/oauth-protected-resource/mcp", default));

        Assert.Equal("resource_metadata_relative", ex.Code);
    }

    [Fact]
    public async Task DiscoverResource_LinkLocalChallengeUrl_RefusedByUrlPolicy()
    {
        var ex = await Assert.ThrowsAsync<OAuthException>(() => NewDiscovery(new Site()).DiscoverResourceAsync(new Uri("http://127.0.0.1:7001/mcp"), "http://169.254.169.254/latest/meta-data", default));

        Assert.Equal("url_refused", ex.Code);
    }
}
