namespace Latchkey.Store;

/// <summary>
/// The non-secret part of a credential. Stored in clear so that listing and status never need a key; it must
/// therefore never hold secret material.
/// </summary>
internal sealed record CredentialMetadata
{
    /// <summary>The upstream base URL the gateway forwards to.</summary>
    public string? Upstream { get; init; }

    /// <summary>
    /// The user's explicit opt-in (<c>--allow-insecure-http</c> on <c>latchkey add</c>, <c>mcp add</c> or
    /// <c>login</c>) to send this credential over plain http to another machine. Without it, every request is
    /// refused as it leaves unless <see cref="Upstream"/> is https or on this machine (<c>UrlPolicyHandler</c>). It
    /// covers <see cref="Upstream"/>'s requests (and an MCP server's discovery), never the authorization server's
    /// endpoints. Written only when set, so records without it keep their stored form.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool AllowInsecureHttp { get; init; }

    /// <summary>How the secret is put on an upstream request.</summary>
    public InjectionRule Injection { get; init; } = InjectionRule.Default;

    /// <summary>Extra headers added to every upstream request, e.g. <c>anthropic-version</c>. Never secrets.</summary>
    public IReadOnlyDictionary<string, string> ExtraHeaders { get; init; } = EmptyHeaders;

    /// <summary>The authorization server's exact issuer identifier (OAuth).</summary>
    public string? Issuer { get; init; }

    /// <summary>The client registration the tokens were issued to (OAuth).</summary>
    public ClientRegistration? Client { get; init; }

    /// <summary>The RFC 8707 resource the grant is for (OAuth).</summary>
    public string? Resource { get; init; }

    /// <summary>The authorization server's token endpoint, recorded at sign-in (OAuth).</summary>
    public string? TokenEndpoint { get; init; }

    /// <summary>The RFC 7009 revocation endpoint, when the server has one (OAuth).</summary>
    public string? RevocationEndpoint { get; init; }

    /// <summary>How the grant was obtained: <c>authorization_code</c>, <c>device_code</c> or <c>client_credentials</c>.</summary>
    public string? GrantType { get; init; }

    /// <summary>Per-issuer compatibility switches in force (e.g. <c>assume_pkce_s256</c>); shown in status.</summary>
    public IReadOnlyList<string> Quirks { get; init; } = [];

    public IReadOnlyList<string> ScopesRequested { get; init; } = [];

    public IReadOnlyList<string> ScopesGranted { get; init; } = [];

    /// <summary>When the access token (or the key, if it has a known end) stops working.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>When the token engine should refresh ahead of expiry.</summary>
    public DateTimeOffset? RefreshAfter { get; init; }

    /// <summary>When the current token was requested.</summary>
    public DateTimeOffset? ObtainedAt { get; init; }

    /// <summary>
    /// When the token engine last refreshed this grant only because an upstream refused a still-fresh token (a
    /// forced refresh). While the token that refresh produced is the stored one, is younger than
    /// <c>TokenEngineOptions.ForcedRefreshInterval</c> and is refused too, no further forced refresh is made.
    /// </summary>
    public DateTimeOffset? LastForcedRefreshAt { get; init; }

    /// <summary>Set for an MCP server added with <c>latchkey mcp add</c>: its transport, <c>streamable-http</c> or
    /// <c>sse</c> (the legacy HTTP+SSE one). <see cref="Upstream"/> is then the server's URL exactly as added.</summary>
    public string? McpTransport { get; init; }

    private static readonly IReadOnlyDictionary<string, string> EmptyHeaders =
        new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
}
