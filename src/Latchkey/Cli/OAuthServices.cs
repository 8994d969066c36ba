using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;

namespace Latchkey.Cli;

/// <summary>
/// The OAuth client and token engine for one command, created on first use: <c>latchkey token</c> on an API key
/// builds no HTTP client at all.
/// </summary>
internal sealed class OAuthServices(ICredentialStore store, TimeProvider time) : IDisposable
{
    private readonly Lazy<OAuthHttp> _http = new(OAuthHttp.CreateDefault);
    private TokenEndpointClient? _tokens;
    private TokenEngine? _engine;

    public TokenEngine Engine => _engine ??= new TokenEngine(store, Tokens, time);

    public GrantFlows Flows => new(_http.Value, Tokens, time);

    public SignInService SignIn => new(store, _http.Value, new Discovery(_http.Value), new ClientRegistrar(_http.Value), Flows, time);

    private TokenEndpointClient Tokens => _tokens ??= new TokenEndpointClient(_http, time);

    /// <summary>Revokes a credential's refresh token (or access token) at its server, best-effort (RFC 7009).</summary>
    public async Task<string?> RevokeAsync(CredentialRecord record, CancellationToken ct)
    {
        var m = record.Metadata;
        if (record.Kind != CredentialKind.OAuth || m.RevocationEndpoint is null || m.Client is null)
        {
            return m.RevocationEndpoint is null && record.Kind == CredentialKind.OAuth ? "the server offers no revocation endpoint" : null;
        }

        var (token, hint) = record.Secrets.RefreshToken is { } rt ? (rt, "refresh_token") : (record.Secrets.AccessToken, "access_token");
        if (token is null)
        {
            return null;
        }

        try
        {
            return await Flows.RevokeAsync(new Uri(m.RevocationEndpoint), new ClientAuth(m.Client.ClientId, m.Client.AuthMethod, record.Secrets.ClientSecret), token, hint, ct);
        }
        catch (Exception ex) when (ex is OAuthException or HttpRequestException)
        {
            return $"not revoked ({ex.Message})";
        }
    }

    public void Dispose()
    {
        if (_http.IsValueCreated)
        {
            _http.Value.Dispose();
        }
    }
}
