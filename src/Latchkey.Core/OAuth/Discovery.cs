using System.Net;
using System.Text.Json;
using Latchkey.Http;

namespace Latchkey.OAuth;

/// <summary>
/// Finds a resource's authorization server: RFC 9728 protected resource metadata (the challenge's
/// <c>resource_metadata</c>, then the path-inserted well-known URL, then the root one) and RFC 8414 / OpenID
/// Connect metadata in the MCP specification's order. Strict: a document whose <c>resource</c> or <c>issuer</c>
/// does not match exactly is refused, and so is a server that does not advertise PKCE S256.
/// </summary>
/// <remarks>A 4xx moves on to the next URL; a 5xx or a network error stops, naming the URL that failed.</remarks>
internal sealed class Discovery(OAuthHttp http)
{
    /// <summary>Finds the protected resource metadata of <paramref name="resource"/>. With
    /// <paramref name="allowInsecureHttp"/> (the user's opt-in for a resource on plain http to another machine),
    /// documents on the resource's own origin may be fetched over plain http; nowhere else.</summary>
    public async Task<ProtectedResourceMetadata> DiscoverResourceAsync(Uri resource, string? challengeMetadataUrl, CancellationToken ct, bool allowInsecureHttp = false)
    {
        ArgumentNullException.ThrowIfNull(resource);
        if (challengeMetadataUrl is not null)
        {
            // The challenge's URL, exactly as given, with no fallback to the well-known URLs: the server named it.
            // On Unix, Uri parses "/path" as an absolute file URI: require a scheme explicitly.
            var hasScheme = challengeMetadataUrl.StartsWith("https://", StringComparison.OrdinalIgnoreCase) || challengeMetadataUrl.StartsWith("http://", StringComparison.OrdinalIgnoreCase);
            if (!hasScheme || !Uri.TryCreate(challengeMetadataUrl, UriKind.Absolute, out var fromChallenge))
            {
                throw new OAuthException("resource_metadata_relative", $"The server's challenge named resource_metadata '{challengeMetadataUrl}', which is not an absolute URL (RFC 9728 requires one).");
            }

            return await FetchResourceMetadataAsync(fromChallenge, resource, allowInsecureHttp, ct).ConfigureAwait(false)
                ?? throw new OAuthException("discovery_failed", $"The resource metadata named by the server's challenge, {fromChallenge}, was not found.");
        }

        var tried = new List<string>();
        var origin = new Uri(resource.GetLeftPart(UriPartial.Authority));
        foreach (var candidate in ResourceMetadataUrls(resource))
        {
            tried.Add(candidate.ToString());

            // RFC 9728 §3.3: a document fetched from a well-known URL names the identifier that URL was made from.
            // For the root URL of a server with a path, that is the origin: the server protects its whole origin
            // as one resource (the grant is then bound to the origin). The server's own URL is accepted there too.
            var madeFrom = candidate.AbsolutePath == "/.well-known/oauth-protected-resource" && resource.AbsolutePath.Length > 1 ? origin : null;
            if (await FetchResourceMetadataAsync(candidate, resource, allowInsecureHttp, ct, madeFrom).ConfigureAwait(false) is { } metadata)
            {
                return metadata;
            }
        }

        throw new OAuthException("discovery_failed", $"No protected resource metadata was found for {resource}; tried {string.Join(", ", tried)}. Check the URL, or sign in with --issuer.");
    }

    /// <summary>Finds and checks the metadata of the authorization server <paramref name="issuer"/>.</summary>
    public async Task<AuthorizationServerMetadata> DiscoverIssuerAsync(string issuer, IssuerQuirks quirks, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        ArgumentNullException.ThrowIfNull(quirks);
        if (!UrlPolicy.TryParse(issuer, out var issuerUri, out var problem) || !string.IsNullOrEmpty(issuerUri.Query))
        {
            throw new OAuthException("issuer_invalid", $"The issuer '{issuer}' is not usable: {(problem.Length > 0 ? problem : "an issuer has no query")}");
        }

        var tried = new List<string>();
        foreach (var candidate in IssuerMetadataUrls(issuerUri))
        {
            tried.Add(candidate.ToString());
            var (status, json) = await GetAsync(candidate, ct).ConfigureAwait(false);
            if (json is not { } document)
            {
                continue; // 4xx: try the next URL
            }

            return Check(document, issuer, candidate, quirks);
        }

        throw new OAuthException("discovery_failed", $"No authorization server metadata was found for the issuer {issuer}; tried {string.Join(", ", tried)}.");
    }

    /// <summary>The RFC 9728 well-known URLs for a resource: path-inserted (when it has a path), then root. The query is kept.</summary>
    internal static IEnumerable<Uri> ResourceMetadataUrls(Uri resource)
    {
        var origin = resource.GetLeftPart(UriPartial.Authority);
        var path = resource.AbsolutePath.TrimEnd('/');
        if (path.Length > 0)
        {
            yield return new Uri($"{origin}/.well-known/oauth-protected-resource{path}{resource.Query}");
        }

        yield return new Uri($"{origin}/.well-known/oauth-protected-resource{(path.Length > 0 ? string.Empty : resource.Query)}");
    }

    /// <summary>The MCP specification's order of AS metadata URLs for an issuer with or without a path.</summary>
    internal static IEnumerable<Uri> IssuerMetadataUrls(Uri issuer)
    {
        var origin = issuer.GetLeftPart(UriPartial.Authority);
        var path = issuer.AbsolutePath.TrimEnd('/');
        if (path.Length > 0)
        {
            yield return new Uri($"{origin}/.well-known/oauth-authorization-server{path}");
            yield return new Uri($"{origin}/.well-known/openid-configuration{path}");
            yield return new Uri($"{origin}{path}/.well-known/openid-configuration");
        }
        else
        {
            yield return new Uri($"{origin}/.well-known/oauth-authorization-server");
            yield return new Uri($"{origin}/.well-known/openid-configuration");
        }
    }

    /// <summary>RFC 9728 §3.3: the document's resource must be the identifier we asked about. Only an empty path
    /// and "/" are treated as equal (RFC 3986 §6.2.3); nothing else is normalised.</summary>
    internal static bool SameResource(string documentResource, Uri requested)
    {
        var asked = requested.OriginalString;
        if (string.Equals(documentResource, asked, StringComparison.Ordinal))
        {
            return true;
        }

        static bool IsBareOrigin(string s) => Uri.TryCreate(s, UriKind.Absolute, out var u) && u.PathAndQuery == "/" && !s.EndsWith('/');
        return (IsBareOrigin(documentResource) && string.Equals(documentResource + "/", asked, StringComparison.Ordinal))
            || (IsBareOrigin(asked) && string.Equals(asked + "/", documentResource, StringComparison.Ordinal));
    }

    /// <param name="url">Where the document is fetched from.</param>
    /// <param name="resource">The server's URL, which the document may always name.</param>
    /// <param name="allowInsecureHttp">Whether <paramref name="url"/> may be plain http to another machine, when it
    /// is on <paramref name="resource"/>'s origin.</param>
    /// <param name="ct">Cancels the fetch.</param>
    /// <param name="madeFrom">Another identifier the document may name: the one a well-known <paramref name="url"/>
    /// was made from, when that is not <paramref name="resource"/> itself (the origin, for the root URL).</param>
    private async Task<ProtectedResourceMetadata?> FetchResourceMetadataAsync(Uri url, Uri resource, bool allowInsecureHttp, CancellationToken ct, Uri? madeFrom = null)
    {
        var sameOrigin = string.Equals(url.GetLeftPart(UriPartial.Authority), resource.GetLeftPart(UriPartial.Authority), StringComparison.OrdinalIgnoreCase);
        var (_, json) = await GetAsync(url, ct, allowInsecureHttp && sameOrigin).ConfigureAwait(false);
        if (json is not { } document)
        {
            return null;
        }

        var declared = document.String("resource")
            ?? throw new OAuthException("resource_metadata_invalid", $"The resource metadata at {url} has no 'resource'.");
        if (!SameResource(declared, resource) && (madeFrom is null || !SameResource(declared, madeFrom)))
        {
            var expected = madeFrom is null ? resource.ToString() : $"{resource} or {madeFrom.GetLeftPart(UriPartial.Authority)}";
            throw new OAuthException("resource_mismatch",
                $"The resource metadata at {url} is for '{declared}', not for {expected} (RFC 9728 §3.3); it was not used. The server is misconfigured or impersonating another.");
        }

        var servers = document.Strings("authorization_servers") ?? [];
        if (servers.Count == 0)
        {
            throw new OAuthException("resource_metadata_invalid", $"The resource metadata at {url} names no authorization_servers.");
        }

        return new ProtectedResourceMetadata(declared, servers, document.Strings("scopes_supported") ?? [], url);
    }

    private static AuthorizationServerMetadata Check(JsonElement document, string issuer, Uri source, IssuerQuirks quirks)
    {
        var declared = document.String("issuer");
        if (!string.Equals(declared, issuer, StringComparison.Ordinal))
        {
            throw new OAuthException("issuer_mismatch",
                $"The metadata at {source} says its issuer is '{declared}', but it was discovered for '{issuer}' (RFC 8414 §3.3); it was not used.");
        }

        var applied = new List<string>();
        var methods = document.Strings("code_challenge_methods_supported");
        if (methods is null && quirks.AssumePkceS256)
        {
            applied.Add("assume_pkce_s256");
            methods = ["S256"];
        }

        if (methods is null || !methods.Contains("S256"))
        {
            throw new OAuthException("pkce_s256_unsupported",
                $"The authorization server {issuer} does not advertise PKCE S256 (code_challenge_methods_supported: {(methods is null ? "absent" : string.Join(", ", methods))}); Latchkey refuses to sign in without it. If you trust this server, use --quirk assume_pkce_s256.");
        }

        var token = Endpoint(document, "token_endpoint", source)
            ?? throw new OAuthException("metadata_invalid", $"The metadata at {source} has no token_endpoint.");
        return new AuthorizationServerMetadata(
            issuer,
            Endpoint(document, "authorization_endpoint", source),
            token,
            Endpoint(document, "registration_endpoint", source),
            Endpoint(document, "revocation_endpoint", source),
            Endpoint(document, "device_authorization_endpoint", source),
            methods,
            document.Bool("authorization_response_iss_parameter_supported") ?? false,
            document.Bool("client_id_metadata_document_supported") ?? false,
            document.Strings("scopes_supported") ?? [],
            source,
            applied);
    }

    private static Uri? Endpoint(JsonElement document, string name, Uri source)
    {
        if (document.String(name) is not { } value)
        {
            return null;
        }

        return UrlPolicy.TryParse(value, out var uri, out var problem)
            ? uri
            : throw new OAuthException("metadata_invalid", $"The metadata at {source} has an unusable {name}: {problem}");
    }

    private async Task<(HttpStatusCode Status, JsonElement? Json)> GetAsync(Uri url, CancellationToken ct, bool allowInsecureHttp = false)
    {
        try
        {
            var (status, json) = await http.GetJsonAsync(url, ct, allowInsecureHttp).ConfigureAwait(false);
            var code = (int)status;
            if (code >= 500 || code is >= 300 and < 400)
            {
                throw new OAuthException("discovery_failed", $"{url} answered HTTP {code}; discovery stopped there.");
            }

            return (status, json);
        }
        catch (HttpRequestException ex)
        {
            throw new OAuthException("discovery_failed", $"{url} could not be reached ({ex.HttpRequestError}).", ex);
        }
    }
}
