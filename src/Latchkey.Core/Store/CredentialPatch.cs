namespace Latchkey.Store;

/// <summary>
/// A partial update. Every property left <see langword="null"/> keeps its stored value: fields are merged, never
/// replaced wholesale. A refresh token or granted scopes are replaced only by a non-empty value, so a token
/// response that omits them cannot erase them (see "A token response that leaves fields out erases them" in
/// docs/failure-modes.md).
/// </summary>
internal sealed record CredentialPatch
{
    public CredentialState? State { get; init; }

    /// <summary>The reason for <see cref="State"/>. Setting the state to <c>Ok</c> clears the reason.</summary>
    public StateReason? Reason { get; init; }

    public string? Upstream { get; init; }

    /// <summary>Sets or clears <see cref="CredentialMetadata.AllowInsecureHttp"/>; null keeps it.</summary>
    public bool? AllowInsecureHttp { get; init; }

    public InjectionRule? Injection { get; init; }

    public IReadOnlyDictionary<string, string>? ExtraHeaders { get; init; }

    public string? Issuer { get; init; }

    public ClientRegistration? Client { get; init; }

    public string? Resource { get; init; }

    public string? TokenEndpoint { get; init; }

    public string? RevocationEndpoint { get; init; }

    public string? GrantType { get; init; }

    public IReadOnlyList<string>? Quirks { get; init; }

    public IReadOnlyList<string>? ScopesRequested { get; init; }

    public IReadOnlyList<string>? ScopesGranted { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public DateTimeOffset? RefreshAfter { get; init; }

    public DateTimeOffset? ObtainedAt { get; init; }

    /// <summary>Set by the token engine on a forced refresh (see <see cref="CredentialMetadata.LastForcedRefreshAt"/>).</summary>
    public DateTimeOffset? LastForcedRefreshAt { get; init; }

    /// <summary>Marks the record as an MCP server with this transport (see <see cref="CredentialMetadata.McpTransport"/>).</summary>
    public string? McpTransport { get; init; }

    public string? ApiKey { get; init; }

    public string? AccessToken { get; init; }

    public string? RefreshToken { get; init; }

    public string? ClientSecret { get; init; }

    public string? IdToken { get; init; }

    /// <summary>
    /// Set by the token engine when this write completes a refresh attempt of <c>owner</c>: the attempt marker,
    /// failure count, backoff and last error are cleared, and the lease is released if <c>owner</c> holds it.
    /// </summary>
    public string? CompletesRefreshOf { get; init; }

    /// <summary>
    /// A new sign-in: the secret material becomes exactly this patch's (a refresh token the new grant lacks is
    /// not carried over from the old one), and the granted scopes are replaced even when empty.
    /// </summary>
    public bool ReplacesGrant { get; init; }

    /// <summary>Whether the patch changes secret material (and so needs the record decrypted).</summary>
    public bool TouchesSecrets =>
        ReplacesGrant || ApiKey is not null || AccessToken is not null || !string.IsNullOrEmpty(RefreshToken)
        || ClientSecret is not null || IdToken is not null;

    /// <summary>Applies the patch to stored metadata.</summary>
    public CredentialMetadata ApplyTo(CredentialMetadata m) => m with
    {
        Upstream = Upstream ?? m.Upstream,
        AllowInsecureHttp = AllowInsecureHttp ?? m.AllowInsecureHttp,
        Injection = Injection ?? m.Injection,
        ExtraHeaders = ExtraHeaders ?? m.ExtraHeaders,
        Issuer = Issuer ?? m.Issuer,
        Client = Client ?? m.Client,
        Resource = Resource ?? m.Resource,
        TokenEndpoint = TokenEndpoint ?? m.TokenEndpoint,
        RevocationEndpoint = RevocationEndpoint ?? m.RevocationEndpoint,
        GrantType = GrantType ?? m.GrantType,
        Quirks = Quirks ?? m.Quirks,
        ScopesRequested = ScopesRequested ?? m.ScopesRequested,
        ScopesGranted = ScopesGranted is { Count: > 0 } || (ReplacesGrant && ScopesGranted is not null) ? ScopesGranted : m.ScopesGranted,
        ExpiresAt = ExpiresAt ?? m.ExpiresAt,
        RefreshAfter = RefreshAfter ?? m.RefreshAfter,
        ObtainedAt = ObtainedAt ?? m.ObtainedAt,
        LastForcedRefreshAt = LastForcedRefreshAt ?? m.LastForcedRefreshAt,
        McpTransport = McpTransport ?? m.McpTransport,
    };

    /// <summary>Applies the patch to stored secrets.</summary>
    public CredentialSecrets ApplyTo(CredentialSecrets s) => ReplacesGrant
        ? new() { ApiKey = ApiKey, AccessToken = AccessToken, RefreshToken = string.IsNullOrEmpty(RefreshToken) ? null : RefreshToken, ClientSecret = ClientSecret, IdToken = IdToken }
        : new()
    {
        ApiKey = ApiKey ?? s.ApiKey,
        AccessToken = AccessToken ?? s.AccessToken,
        RefreshToken = string.IsNullOrEmpty(RefreshToken) ? s.RefreshToken : RefreshToken,
        ClientSecret = ClientSecret ?? s.ClientSecret,
        IdToken = IdToken ?? s.IdToken,
    };
}
