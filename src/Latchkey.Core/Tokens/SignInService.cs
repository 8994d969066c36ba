using System.Net;
using Latchkey.OAuth;
using Latchkey.Store;

namespace Latchkey.Tokens;

/// <summary>What <c>latchkey login</c> was asked to do.</summary>
internal sealed record SignInOptions
{
    public required string Name { get; init; }

    /// <summary>The protected resource (an MCP server or API); its metadata names the issuer.</summary>
    public Uri? Resource { get; init; }

    /// <summary>The issuer, when there is no resource metadata to discover it from (or to pin one).</summary>
    public string? Issuer { get; init; }

    public ClientChoice Client { get; init; } = ClientChoice.Dynamic;

    /// <summary>Scopes asked for explicitly; otherwise the challenge's, then the resource's scopes_supported.</summary>
    public IReadOnlyList<string>? Scopes { get; init; }

    public bool Device { get; init; }

    public bool ClientCredentials { get; init; }

    /// <summary>Where the gateway forwards for this credential; defaults to the resource.</summary>
    public string? Upstream { get; init; }

    public IReadOnlyList<string> Quirks { get; init; } = [];

    /// <summary>For <c>latchkey mcp add</c>: the MCP transport to record with the grant (in the same write).</summary>
    public string? McpTransport { get; init; }

    /// <summary>
    /// The user's <c>--allow-insecure-http</c>: the upstream (and, for the probe and its resource metadata, the
    /// resource's own origin) may be plain http to another machine. Recorded in the grant's metadata; the
    /// authorization server's endpoints stay https (or loopback) regardless.
    /// </summary>
    public bool AllowInsecureHttp { get; init; }

    /// <summary>Where the authorization-code grant sends the browser and hears back, when not the CLI's loopback
    /// listener (the dashboard's <c>/ui/callback</c>). A dynamically registered client is registered again then, so
    /// that the redirect URI is certainly one the server knows.</summary>
    public Func<IAuthorizationRedirect>? Redirect { get; init; }

    /// <summary>Refuse to store a grant that lacks a requested scope (other than <c>offline_access</c>): the stored
    /// grant is replaced only by a complete one.</summary>
    public bool RequireRequestedScopes { get; init; }
}

/// <summary>
/// Signs in: discovers the resource and its authorization server, registers (or reuses the stored registration
/// for the same issuer), runs the grant, and only then replaces the stored grant in one write conditional on the
/// record's version; the old refresh token is revoked afterwards. A failed or abandoned sign-in changes nothing.
/// The registration is stored in the same record as the tokens it produced, so a refresh token is never presented
/// with another registration's client id.
/// </summary>
internal sealed class SignInService(ICredentialStore store, OAuthHttp http, Discovery discovery, ClientRegistrar registrar, GrantFlows flows, TimeProvider time)
{
    public async Task<CredentialRecord> SignInAsync(SignInOptions options, BrowserLauncher browser, TextWriter progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(browser);
        ArgumentNullException.ThrowIfNull(progress);
        var existing = await store.GetAsync(options.Name, ct).ConfigureAwait(false);
        if (existing is { Kind: CredentialKind.ApiKey })
        {
            throw new OAuthException("not_oauth", $"'{options.Name}' is an API-key credential; choose another name for the OAuth sign-in, or remove it first.");
        }

        var old = existing?.State == CredentialState.Quarantined ? null : existing?.Metadata;
        var resource = options.Resource ?? (old?.Resource is { } r && options.Issuer is null ? new Uri(r) : null);
        var requestedIssuer = options.Issuer ?? (options.Resource is null ? old?.Issuer : null);
        if (resource is null && requestedIssuer is null)
        {
            throw new OAuthException("usage", $"Say what to sign in to: --resource URL (the API or MCP server) or --issuer URL (the authorization server).");
        }

        // The opt-in for plain http: given now, or recorded with the grant and still about the same URLs.
        var upstream = options.Upstream ?? old?.Upstream;
        var insecureResource = options.AllowInsecureHttp || (old?.AllowInsecureHttp == true && resource is not null && resource.OriginalString == old.Resource);
        ProtectedResourceMetadata? prm = null;
        IReadOnlyList<string> challengeScopes = [];
        if (resource is not null)
        {
            var challenge = await ProbeAsync(resource, (options.McpTransport ?? old?.McpTransport) == "streamable-http", insecureResource, ct).ConfigureAwait(false);
            challengeScopes = challenge.Scopes;
            try
            {
                prm = await discovery.DiscoverResourceAsync(resource, challenge.ResourceMetadata, ct, insecureResource).ConfigureAwait(false);
            }
            catch (OAuthException ex) when (requestedIssuer is not null && ex.Code == "discovery_failed")
            {
                // The issuer is known (given, or the stored grant's): resource metadata is optional then. Only its
                // absence is forgiven; a document that lies about its resource or is malformed is still refused.
                prm = null;
            }
        }

        var issuer = requestedIssuer ?? prm!.AuthorizationServers[0];
        if (prm is not null && options.Issuer is not null && !prm.AuthorizationServers.Contains(options.Issuer, StringComparer.Ordinal))
        {
            throw new OAuthException("issuer_not_listed", $"The resource {prm.Resource} names the authorization servers {string.Join(", ", prm.AuthorizationServers)}, not {options.Issuer}.");
        }

        var quirks = IssuerQuirks.Parse(options.Quirks.Concat(old?.Quirks ?? []).Distinct());
        progress.WriteLine($"Authorization server: {issuer}");
        var server = await discovery.DiscoverIssuerAsync(issuer, quirks, ct).ConfigureAwait(false);

        // Reuse the stored registration for the same issuer unless another client was asked for. A registration belongs
        // to the authorization server that made it: when the resource now names another issuer, register anew.
        var reuse = options.Client == ClientChoice.Dynamic && old?.Client is { } stored && old.Issuer == server.Issuer
            && !(options.Device && stored.Source == "dcr")
            && !(options.Redirect is not null && stored.Source == "dcr");
        var (client, secret) = reuse
            ? (old!.Client!, existing!.Secrets.ClientSecret)
            : await registrar.RegisterAsync(server, options.Client, options.Device, ct).ConfigureAwait(false);
        if (!reuse)
        {
            progress.WriteLine($"Client: {client.ClientId} ({client.Source switch { "dcr" => "registered dynamically", "cimd" => "client metadata document", _ => "pre-registered" }})");
        }

        var resourceId = prm?.Resource ?? resource?.OriginalString;
        var scopes = ChooseScopes(options, challengeScopes, prm, old, resourceId, server);
        var request = new GrantRequest(server, client, secret, resourceId, scopes);
        var sentAt = time.GetUtcNow();
        var grantType = options.ClientCredentials ? "client_credentials" : options.Device ? "device_code" : "authorization_code";
        var tokenSet = grantType switch
        {
            "client_credentials" => await flows.ClientCredentialsAsync(request, ct).ConfigureAwait(false),
            "device_code" => await flows.DeviceAsync(request, progress, ct).ConfigureAwait(false),
            _ => options.Redirect is { } redirect
                ? await flows.AuthorizationCodeAsync(request, redirect(), ct).ConfigureAwait(false)
                : await flows.AuthorizationCodeAsync(request, browser, ct).ConfigureAwait(false),
        };
        if (!string.Equals(tokenSet.TokenType, "Bearer", StringComparison.OrdinalIgnoreCase))
        {
            throw new OAuthException("unsupported_token_type", $"{server.Issuer} issued a '{tokenSet.TokenType}' token; Latchkey sends Bearer tokens only. Nothing was changed.");
        }

        if (options.RequireRequestedScopes && tokenSet.Scope is { } grantedScope)
        {
            var missing = scopes.Except(grantedScope.Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal).Where(s => s != "offline_access").ToList();
            if (missing.Count > 0)
            {
                throw new OAuthException("scopes_incomplete", $"{server.Issuer} granted '{grantedScope}' but not {string.Join(", ", missing.Select(m => $"'{m}'"))}; the previous grant was kept. Nothing was changed.");
            }
        }

        var lifetime = TokenEngine.LifetimeOf(tokenSet, sentAt, TimeSpan.FromHours(1));
        upstream ??= resourceId;
        var allowInsecureHttp = options.AllowInsecureHttp || (old?.AllowInsecureHttp == true && upstream == old.Upstream);
        var refreshAfter = TokenEngine.RefreshAfter(sentAt, lifetime);
        var quirksApplied = server.QuirksApplied.Concat(options.Quirks).Distinct().ToList();
        var metadata = new CredentialPatch
        {
            ReplacesGrant = true,
            State = CredentialState.Ok,
            CompletesRefreshOf = "sign-in",
            Metadata = m => m with
            {
                Upstream = upstream ?? m.Upstream,
                AllowInsecureHttp = allowInsecureHttp,
                Issuer = server.Issuer,
                Client = client,
                Resource = resourceId ?? m.Resource,
                TokenEndpoint = server.TokenEndpoint.AbsoluteUri,
                RevocationEndpoint = server.RevocationEndpoint?.AbsoluteUri ?? m.RevocationEndpoint,
                GrantType = grantType == "device_code" ? "authorization_code" : grantType,
                Quirks = quirksApplied,
                ScopesRequested = scopes,
                McpTransport = options.McpTransport ?? m.McpTransport,
                ObtainedAt = sentAt,
                ExpiresAt = sentAt + lifetime,
                RefreshAfter = refreshAfter,
            },
            ScopesGranted = tokenSet.Scope is { } granted ? granted.Split(' ', StringSplitOptions.RemoveEmptyEntries) : scopes,
            AccessToken = tokenSet.AccessToken,
            RefreshToken = tokenSet.RefreshToken,
            IdToken = tokenSet.IdToken,
            ClientSecret = secret,
        };

        CredentialRecord written;
        if (existing is null)
        {
            var created = await store.CreateAsync(new NewCredential(options.Name, CredentialKind.OAuth, metadata.ApplyTo(new CredentialMetadata()), metadata.ApplyTo(CredentialSecrets.Empty)), ct).ConfigureAwait(false);
            written = created.Succeeded ? created.Record! : throw new OAuthException("conflict", $"'{options.Name}' was created by someone else during the sign-in; nothing was overwritten. Run the command again.");
        }
        else
        {
            var result = existing.State == CredentialState.Quarantined
                ? throw new OAuthException("quarantined", $"'{options.Name}' is quarantined; remove it ('latchkey remove {options.Name}') or restore a version before signing in again.")
                : await store.UpdateAsync(options.Name, metadata, WriteCondition.Version(existing.Version), ct).ConfigureAwait(false);
            written = result.Succeeded ? result.Record! : throw new OAuthException("conflict", $"'{options.Name}' changed during the sign-in ({result.Outcome}); the new grant was not stored. Run the command again.");

            // The new grant is stored: now retire the old one (best-effort, RFC 7009).
            if (existing.Secrets.RefreshToken is { } oldRefresh && oldRefresh != tokenSet.RefreshToken && old?.RevocationEndpoint is { } revocation && old.Client is { } oldClient)
            {
                try
                {
                    await flows.RevokeAsync(new Uri(revocation), new ClientAuth(oldClient.ClientId, oldClient.AuthMethod, existing.Secrets.ClientSecret), oldRefresh, "refresh_token", ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OAuthException or HttpRequestException)
                {
                    progress.WriteLine($"(The previous refresh token could not be revoked: {ex.Message})");
                }
            }
        }

        return written;
    }

    /// <summary>Asks the resource without a token, to read its challenge (RFC 9728 §5.1). A Streamable HTTP MCP
    /// server is asked the way its clients ask it, with an <c>initialize</c> POST: some answer GET with 405 and no
    /// challenge. A server may let <c>initialize</c> through unauthenticated and challenge only the requests that
    /// follow; the probe then carries on as an MCP client does (<c>notifications/initialized</c>, then
    /// <c>tools/list</c>, in the session it was given) and reads the challenge of the first request refused, so the
    /// scopes asked for are the ones that request needs, not every scope the server supports. The
    /// session is then deleted. No token is ever sent.</summary>
    private async Task<WwwAuthenticateResult> ProbeAsync(Uri resource, bool mcpPost, bool allowInsecureHttp, CancellationToken ct)
    {
        try
        {
            var first = await SendProbeAsync(resource, mcpPost ? McpProbe : null, null, null, allowInsecureHttp, ct).ConfigureAwait(false);
            if (Challenge(first) is { } challenge)
            {
                return challenge;
            }

            if (!mcpPost || !first.IsSuccess)
            {
                return WwwAuthenticateResult.Empty;
            }

            var session = first.Headers.NonValidated.TryGetValues("Mcp-Session-Id", out var ids) ? ids.FirstOrDefault() : null;
            var version = NegotiatedVersion(first) ?? McpProbeVersion;
            try
            {
                foreach (var message in new[] { McpInitialized, McpToolsList })
                {
                    var next = await SendProbeAsync(resource, message, session, version, allowInsecureHttp, ct).ConfigureAwait(false);
                    if (Challenge(next) is { } later)
                    {
                        return later;
                    }
                }

                return WwwAuthenticateResult.Empty;
            }
            finally
            {
                if (session is not null)
                {
                    await EndProbeSessionAsync(resource, session, version, allowInsecureHttp, ct).ConfigureAwait(false);
                }
            }
        }
        catch (HttpRequestException ex)
        {
            throw new OAuthException("discovery_failed", $"{resource} could not be reached ({ex.HttpRequestError}).", ex);
        }
    }

    private async Task<OAuthHttp.OAuthResponse> SendProbeAsync(Uri resource, string? json, string? session, string? version, bool allowInsecureHttp, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(json is null ? HttpMethod.Get : HttpMethod.Post, resource);
        Http.UrlPolicyHandler.PermitInsecureHttp(request, allowInsecureHttp);
        if (json is not null)
        {
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
            request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        }

        if (session is not null)
        {
            request.Headers.TryAddWithoutValidation("Mcp-Session-Id", session);
        }

        if (version is not null)
        {
            request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", version);
        }

        return await http.SendAsync(request, ct).ConfigureAwait(false);
    }

    private async Task EndProbeSessionAsync(Uri resource, string session, string version, bool allowInsecureHttp, CancellationToken ct)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Delete, resource);
            Http.UrlPolicyHandler.PermitInsecureHttp(request, allowInsecureHttp);
            request.Headers.TryAddWithoutValidation("Mcp-Session-Id", session);
            request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", version);
            await http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or OAuthException)
        {
            // best-effort: the server forgets an idle session by itself
        }
    }

    private static WwwAuthenticateResult? Challenge(OAuthHttp.OAuthResponse response) =>
        response.Status == HttpStatusCode.Unauthorized && response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values)
            ? WwwAuthenticateParser.Parse(values)
            : null;

    /// <summary>The protocol version in an <c>initialize</c> answer: a JSON body, or the first message of an event
    /// stream (<see cref="Http.SseReader"/>) that is an answer carrying one.</summary>
    private static string? NegotiatedVersion(OAuthHttp.OAuthResponse response) =>
        response.MediaType == "text/event-stream"
            ? Http.SseReader.Messages(response.Body).Select(ProtocolVersion).FirstOrDefault(v => v is not null)
            : ProtocolVersion(System.Text.Encoding.UTF8.GetString(response.Body));

    private static string? ProtocolVersion(string json)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            return document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                && document.RootElement.TryGetProperty("result", out var result) && result.ValueKind == System.Text.Json.JsonValueKind.Object
                && result.TryGetProperty("protocolVersion", out var version) && version.ValueKind == System.Text.Json.JsonValueKind.String
                ? version.GetString()
                : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private const string McpProbeVersion = "2025-11-25";
    private const string McpProbe = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"" + McpProbeVersion + "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"latchkey\",\"version\":\"1\"}}}";
    private const string McpInitialized = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    private const string McpToolsList = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";

    /// <summary>Explicit scopes, else the challenge's (it is authoritative for the request that was refused), else the
    /// resource's scopes_supported; a new sign-in to the same resource asks for the union with what was asked before
    /// (step-up: a refresh cannot widen a grant, and the old scopes must not be lost).</summary>
    private static List<string> ChooseScopes(SignInOptions options, IReadOnlyList<string> challenge, ProtectedResourceMetadata? prm, CredentialMetadata? old, string? resource, AuthorizationServerMetadata server)
    {
        IEnumerable<string> scopes = options.Scopes is { Count: > 0 } explicitScopes ? explicitScopes
            : challenge.Count > 0 ? challenge
            : prm?.ScopesSupported ?? [];
        if (old is not null && old.Resource == resource && old.Issuer == server.Issuer)
        {
            scopes = old.ScopesRequested.Concat(scopes);
        }

        var list = scopes.Distinct(StringComparer.Ordinal).ToList();
        if (!options.ClientCredentials && server.ScopesSupported.Contains("offline_access") && !list.Contains("offline_access") && list.Count > 0)
        {
            list.Add("offline_access");
        }

        return list;
    }
}
