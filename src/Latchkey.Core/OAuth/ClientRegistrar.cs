using System.Text.Json.Nodes;
using Latchkey.Diagnostics;
using Latchkey.Store;

namespace Latchkey.OAuth;

/// <summary>What the user told us about the client to use.</summary>
/// <param name="ClientId">A pre-registered client id (step 1 of the registration order).</param>
/// <param name="ClientSecret">Its secret, read from standard input; never from argv.</param>
/// <param name="AuthMethod">How a pre-registered client authenticates; defaults to basic with a secret, none without.</param>
/// <param name="MetadataDocumentUrl">A Client ID Metadata Document URL (step 2), used when the server supports it.</param>
internal sealed record ClientChoice(string? ClientId, string? ClientSecret, string? AuthMethod, string? MetadataDocumentUrl)
{
    public static ClientChoice Dynamic { get; } = new(null, null, null, null);

    public override string ToString() => $"ClientChoice({ClientId}, secret: {(ClientSecret is null ? "none" : "***")}, {AuthMethod}, {MetadataDocumentUrl})";
}

/// <summary>
/// Chooses or creates the OAuth client for an authorization server, in this order:
/// pre-registered, then a Client ID Metadata Document, then RFC 7591 dynamic registration (native, loopback).
/// The registration is returned to be stored in the same record as the tokens it produces.
/// </summary>
internal sealed class ClientRegistrar(OAuthHttp http)
{
    /// <summary>The redirect URI registered: loopback without a port, which matches any port (RFC 8252 §7.3).</summary>
    public const string RegisteredRedirectUri = "http://127.0.0.1/callback";

    /// <summary>The gateway dashboard's redirect URI (<c>/ui/callback</c> on the gateway's loopback port), registered
    /// alongside <see cref="RegisteredRedirectUri"/> so the dashboard can reconnect a credential.</summary>
    public const string DashboardRedirectUri = "http://127.0.0.1/ui/callback";

    public async Task<(ClientRegistration Registration, string? Secret)> RegisterAsync(AuthorizationServerMetadata server, ClientChoice choice, bool deviceFlow, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(choice);
        if (choice.ClientId is not null)
        {
            var method = choice.AuthMethod ?? (choice.ClientSecret is null ? "none" : "client_secret_basic");
            if (method is not ("none" or "client_secret_basic" or "client_secret_post"))
            {
                throw new OAuthException("auth_method_invalid", $"Unknown client authentication method '{method}'. Valid methods: none, client_secret_basic, client_secret_post.");
            }

            if (method != "none" && choice.ClientSecret is null)
            {
                throw new OAuthException("client_secret_missing", $"The method {method} needs a client secret: pass --client-secret-stdin and pipe it in.");
            }

            return (new ClientRegistration(choice.ClientId, "preregistered", method, RegisteredRedirectUri), choice.ClientSecret);
        }

        if (choice.MetadataDocumentUrl is not null)
        {
            if (!server.ClientIdMetadataDocumentSupported)
            {
                throw new OAuthException("cimd_unsupported", $"The authorization server {server.Issuer} does not advertise client_id_metadata_document_supported, so the client metadata document {choice.MetadataDocumentUrl} cannot be used. Drop --client-metadata-url to register dynamically, or use --client-id.");
            }

            if (!Uri.TryCreate(choice.MetadataDocumentUrl, UriKind.Absolute, out var cimd) || cimd.Scheme != Uri.UriSchemeHttps || cimd.AbsolutePath.Length <= 1 || cimd.Fragment.Length > 0 || cimd.UserInfo.Length > 0)
            {
                throw new OAuthException("cimd_invalid", $"A client metadata document URL must be https with a path and no fragment or user info; '{choice.MetadataDocumentUrl}' is not.");
            }

            return (new ClientRegistration(choice.MetadataDocumentUrl, "cimd", "none", RegisteredRedirectUri), null);
        }

        if (server.RegistrationEndpoint is null)
        {
            throw new OAuthException("registration_unavailable",
                $"The authorization server {server.Issuer} offers no dynamic registration and no client was given. Register Latchkey with it and pass --client-id (and --client-secret-stdin), or --client-metadata-url.");
        }

        return await RegisterDynamicallyAsync(server, deviceFlow, ct).ConfigureAwait(false);
    }

    private async Task<(ClientRegistration, string?)> RegisterDynamicallyAsync(AuthorizationServerMetadata server, bool deviceFlow, CancellationToken ct)
    {
        var grantTypes = new JsonArray("authorization_code", "refresh_token");
        if (deviceFlow)
        {
            grantTypes.Add((JsonNode)"urn:ietf:params:oauth:grant-type:device_code");
        }

        var body = new JsonObject
        {
            ["client_name"] = "Latchkey",
            ["application_type"] = "native",
            ["redirect_uris"] = new JsonArray(RegisteredRedirectUri, DashboardRedirectUri),
            ["grant_types"] = grantTypes,
            ["response_types"] = new JsonArray("code"),
            ["token_endpoint_auth_method"] = "none",
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, server.RegistrationEndpoint) { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        OAuthHttp.OAuthResponse response;
        try
        {
            response = await http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new OAuthException("registration_failed", $"Dynamic registration at {server.RegistrationEndpoint} failed: {ex.HttpRequestError}.", ex);
        }

        var json = response.TryParseJson();
        if (!response.IsSuccess)
        {
            var error = json?.String("error");
            var description = json?.String("error_description");
            var shown = error is null ? null : ServerText.Quote(error, [], ServerText.MaxCodeLength);
            var hint = error switch
            {
                "invalid_redirect_uri" => " The server refused Latchkey's loopback redirect URI; register a client by hand and pass --client-id.",
                _ when (int)response.Status == 401 => " The server requires an initial access token for registration; register a client by hand and pass --client-id.",
                _ => " Register a client by hand and pass --client-id, or --client-metadata-url.",
            };
            throw new OAuthException("registration_failed", $"Dynamic registration at {server.RegistrationEndpoint} was refused (HTTP {(int)response.Status}{(shown is null ? string.Empty : $", {shown}")}{(description is null ? string.Empty : $": {ServerText.Quote(description, [])}")}).{hint}");
        }

        var clientId = json?.String("client_id")
            ?? throw new OAuthException("registration_failed", $"Dynamic registration at {server.RegistrationEndpoint} answered without a client_id.");
        var method = json?.String("token_endpoint_auth_method") ?? "none";
        return (new ClientRegistration(clientId, "dcr", method, RegisteredRedirectUri), json?.String("client_secret"));
    }
}
