namespace Latchkey.Store;

/// <summary>
/// A partial update. Every property left <see langword="null"/> keeps its stored value: fields are merged, never
/// replaced wholesale. Secrets and granted scopes are named here one field at a time, and a refresh token or
/// granted scopes are replaced only by a non-empty value, so a token response that omits them cannot erase them
/// (see "A token response that leaves fields out erases them" in docs/failure-modes.md). The rest of the metadata
/// is changed by <see cref="Metadata"/>, written with <c>with</c> over <see cref="CredentialMetadata"/> itself, so
/// this type never repeats the metadata's fields and a new metadata field needs no change here.
/// </summary>
internal sealed record CredentialPatch
{
    public CredentialState? State { get; init; }

    /// <summary>The reason for <see cref="State"/>. Setting the state to <c>Ok</c> clears the reason.</summary>
    public StateReason? Reason { get; init; }

    /// <summary>
    /// The change to the credential's metadata, as a function of the stored metadata: <c>m =&gt; m with { Upstream = … }</c>.
    /// It must be pure (the store may apply it again after a retry) and keep every field it does not mean to change,
    /// which <c>with</c> does. <see langword="null"/> changes none.
    /// </summary>
    public Func<CredentialMetadata, CredentialMetadata>? Metadata { get; init; }

    /// <summary>The scopes a token response granted: they replace <see cref="CredentialMetadata.ScopesGranted"/> only
    /// when non-empty (or on <see cref="ReplacesGrant"/>), after <see cref="Metadata"/>.</summary>
    public IReadOnlyList<string>? ScopesGranted { get; init; }

    public string? AccessToken { get; init; }

    /// <summary>Replaces the stored refresh token only when non-empty (or on <see cref="ReplacesGrant"/>).</summary>
    public string? RefreshToken { get; init; }

    public string? IdToken { get; init; }

    public string? ApiKey { get; init; }

    public string? ClientSecret { get; init; }

    /// <summary>
    /// A new sign-in: the secret material becomes exactly this patch's (a refresh token the new grant lacks is
    /// not carried over from the old one), and the granted scopes are replaced even when empty.
    /// </summary>
    public bool ReplacesGrant { get; init; }

    /// <summary>
    /// Set by the token engine when this write completes a refresh attempt of <c>owner</c>: the attempt marker,
    /// failure count, backoff and last error are cleared, and the lease is released if <c>owner</c> holds it.
    /// </summary>
    public string? CompletesRefreshOf { get; init; }

    /// <summary>Whether the patch changes secret material (and so needs the record decrypted).</summary>
    public bool TouchesSecrets =>
        ReplacesGrant || ApiKey is not null || AccessToken is not null || !string.IsNullOrEmpty(RefreshToken)
        || ClientSecret is not null || IdToken is not null;

    /// <summary>Applies the patch to stored metadata: <see cref="Metadata"/>, then <see cref="ScopesGranted"/>.</summary>
    public CredentialMetadata ApplyTo(CredentialMetadata m)
    {
        var configured = Metadata?.Invoke(m) ?? m;
        return ScopesGranted is { Count: > 0 } || (ReplacesGrant && ScopesGranted is not null)
            ? configured with { ScopesGranted = ScopesGranted }
            : configured;
    }

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
