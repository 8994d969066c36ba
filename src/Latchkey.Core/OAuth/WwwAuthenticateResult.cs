namespace Latchkey.OAuth;

/// <summary>
/// What a <c>WWW-Authenticate</c> field held: the challenges that parsed, and the elements dropped with their reason
/// (<c>unterminated_quote</c>, <c>duplicate_param</c>, <c>param_without_scheme</c>, <c>unexpected_token</c>,
/// <c>bad_char</c>, <c>too_large</c>).
/// </summary>
internal sealed record WwwAuthenticateResult(IReadOnlyList<AuthChallenge> Challenges, IReadOnlyList<DroppedChallenge> Dropped)
{
    public static WwwAuthenticateResult Empty { get; } = new([], []);

    /// <summary>
    /// The challenge that tells an OAuth client where to go next (RFC 9728 §5.1): the first Bearer challenge with a
    /// <c>resource_metadata</c>, else the first DPoP one with it, else the first Bearer challenge; or
    /// <see langword="null"/>.
    /// </summary>
    public AuthChallenge? ResourceChallenge =>
        Challenges.FirstOrDefault(c => c.IsScheme("Bearer") && c["resource_metadata"] is not null)
        ?? Challenges.FirstOrDefault(c => c.IsScheme("DPoP") && c["resource_metadata"] is not null)
        ?? Challenges.FirstOrDefault(c => c.IsScheme("Bearer"));

    /// <summary>The <c>resource_metadata</c> URL of <see cref="ResourceChallenge"/>, as sent (not yet checked).</summary>
    public string? ResourceMetadata => ResourceChallenge?["resource_metadata"];

    /// <summary>The <c>error</c> of <see cref="ResourceChallenge"/>.</summary>
    public string? Error => ResourceChallenge?["error"];

    /// <summary>The scopes the <see cref="ResourceChallenge"/> asks for; empty when absent or empty.</summary>
    public IReadOnlyList<string> Scopes =>
        ResourceChallenge?["scope"] is { Length: > 0 } scope ? scope.Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
}

/// <summary>An element of the field that was not a valid challenge, and why.</summary>
/// <param name="Reason">A stable reason code.</param>
/// <param name="Offset">Where in the combined field value the element started.</param>
internal sealed record DroppedChallenge(string Reason, int Offset);
