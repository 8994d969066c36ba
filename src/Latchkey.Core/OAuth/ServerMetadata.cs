namespace Latchkey.OAuth;

/// <summary>RFC 9728 protected resource metadata, after the RFC 9728 §3.3 check.</summary>
/// <param name="Resource">The resource identifier, verbatim: what goes in every <c>resource</c> parameter.</param>
/// <param name="AuthorizationServers">The issuers that protect it, at least one.</param>
/// <param name="ScopesSupported">The scopes it uses, possibly none.</param>
/// <param name="Source">The URL the document came from.</param>
internal sealed record ProtectedResourceMetadata(string Resource, IReadOnlyList<string> AuthorizationServers, IReadOnlyList<string> ScopesSupported, Uri Source);

/// <summary>RFC 8414 / OpenID Connect discovery metadata, after the exact issuer check.</summary>
internal sealed record AuthorizationServerMetadata(
    string Issuer,
    Uri? AuthorizationEndpoint,
    Uri TokenEndpoint,
    Uri? RegistrationEndpoint,
    Uri? RevocationEndpoint,
    Uri? DeviceAuthorizationEndpoint,
    IReadOnlyList<string> CodeChallengeMethods,
    bool IssParameterSupported,
    bool ClientIdMetadataDocumentSupported,
    IReadOnlyList<string> ScopesSupported,
    Uri Source,
    IReadOnlyList<string> QuirksApplied);

/// <summary>Per-issuer compatibility switches. Strict by default; each one that fires is recorded and shown in status.</summary>
internal sealed record IssuerQuirks
{
    public static IssuerQuirks None { get; } = new();

    /// <summary>Accept metadata without <c>code_challenge_methods_supported</c> (Entra, Cognito); S256 is still sent.</summary>
    public bool AssumePkceS256 { get; init; }

    public static IssuerQuirks Parse(IEnumerable<string> names)
    {
        var quirks = None;
        foreach (var name in names)
        {
            quirks = name switch
            {
                "assume_pkce_s256" => quirks with { AssumePkceS256 = true },
                _ => throw new OAuthException("unknown_quirk", $"Unknown quirk '{name}'. Valid quirks: assume_pkce_s256."),
            };
        }

        return quirks;
    }
}
