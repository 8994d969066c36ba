namespace Latchkey.Store;

/// <summary>
/// The OAuth client a grant was issued to. It lives in the same record as the tokens it produced, so a refresh
/// can never present one registration's refresh token with another's client id. The client secret, when there
/// is one, is secret material and lives in <see cref="CredentialSecrets.ClientSecret"/>.
/// </summary>
/// <param name="ClientId">The client identifier the authorization server knows.</param>
/// <param name="Source"><c>preregistered</c>, <c>cimd</c> (a client ID metadata document) or <c>dcr</c>.</param>
/// <param name="AuthMethod"><c>none</c>, <c>client_secret_basic</c> or <c>client_secret_post</c>.</param>
/// <param name="RedirectUri">The redirect URI registered, when the registration fixed one.</param>
internal sealed record ClientRegistration(string ClientId, string Source, string AuthMethod, string? RedirectUri = null);
