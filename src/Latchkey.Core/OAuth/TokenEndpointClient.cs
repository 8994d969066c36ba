using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Latchkey.Diagnostics;

namespace Latchkey.OAuth;

/// <summary>How the client authenticates at the token endpoint: the method its registration returned, never a guess.</summary>
internal sealed record ClientAuth(string ClientId, string Method, string? ClientSecret)
{
    public override string ToString() => $"ClientAuth({ClientId}, {Method}, secret: {(ClientSecret is null ? "none" : "***")})";
}

/// <summary>A successful token response.</summary>
internal sealed record TokenSet(string AccessToken, string TokenType, long? ExpiresIn, string? RefreshToken, string? Scope, string? IdToken, long? RefreshTokenExpiresIn)
{
    public override string ToString() => $"TokenSet(token_type: {TokenType}, expires_in: {ExpiresIn}, refresh_token: {(RefreshToken is null ? "none" : "***")}, scope: {Scope})";
}

/// <summary>The class of a token-endpoint outcome ("Token-endpoint answers" in docs/failure-modes.md).</summary>
internal enum TokenOutcomeKind
{
    /// <summary>Tokens issued: merge and commit.</summary>
    Success,

    /// <summary>The grant or client is rejected: sign-in is needed (<c>invalid_grant</c>, <c>invalid_client</c>, …).</summary>
    Terminal,

    /// <summary>Try later; nothing was consumed (5xx, 429, <c>temporarily_unavailable</c>, an unknown 4xx).</summary>
    Transient,

    /// <summary>The request may have been processed but the answer was lost (502, 504, reset, timeout, a 200 that is not tokens).</summary>
    Ambiguous,

    /// <summary>The request never left (DNS, connect, TLS failure).</summary>
    NotSent,
}

/// <summary>
/// What a token request came to, with the server's error, status and request id for the reason. The server's words
/// (<see cref="Error"/>, <see cref="ErrorDescription"/>, <see cref="RequestId"/>) come quoted by
/// <see cref="ServerText"/> from <see cref="TokenEndpointClient.RequestAsync"/>, with the secrets it sent masked.
/// </summary>
internal sealed record TokenOutcome(TokenOutcomeKind Kind, TokenSet? Tokens, string? Error, string? ErrorDescription, int? Status, TimeSpan? RetryAfter, string? RequestId)
{
    /// <summary>This outcome with the server's words quoted by <see cref="ServerText"/>, every one of <paramref name="secrets"/> masked.</summary>
    public TokenOutcome Masked(IEnumerable<string?> secrets)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        var all = secrets.ToList();
        return this with
        {
            Error = Error is null ? null : ServerText.Quote(Error, all, ServerText.MaxCodeLength),
            ErrorDescription = ErrorDescription is null ? null : ServerText.Quote(ErrorDescription, all),
            RequestId = RequestId is null ? null : ServerText.Quote(RequestId, all, ServerText.MaxRequestIdLength),
        };
    }

    public string Describe() =>
        Error is null
            ? $"{Kind.ToString().ToLowerInvariant()}{(Status is { } s ? $" (HTTP {s})" : string.Empty)}{(ErrorDescription is null ? string.Empty : $": {ErrorDescription}")}"
            : $"{Error}{(ErrorDescription is null ? string.Empty : $": {ErrorDescription}")}{(Status is { } st ? $" (HTTP {st})" : string.Empty)}";
}

/// <summary>
/// Calls a token endpoint and classifies the answer. Every request goes on a fresh connection
/// (<c>Connection: close</c>), so the HTTP stack can never silently replay a refresh on a dead pooled connection: a
/// replayed refresh token is refused, or revokes the grant, once the server has rotated it.
/// </summary>
internal sealed class TokenEndpointClient
{
    /// <summary>The form parameters that carry a secret, masked out of whatever the server says back.</summary>
    private static readonly HashSet<string> SecretParameters = new(StringComparer.Ordinal)
    {
        "refresh_token", "code", "code_verifier", "device_code", "token", "client_secret", "client_assertion", "assertion", "password",
    };

    private readonly Lazy<OAuthHttp> _http;
    private readonly TimeProvider _time;

    public TokenEndpointClient(OAuthHttp http, TimeProvider time)
        : this(new Lazy<OAuthHttp>(http), time)
    {
    }

    /// <summary>Creates the HTTP client on first use, so a process that never refreshes never pays for it.</summary>
    public TokenEndpointClient(Lazy<OAuthHttp> http, TimeProvider time)
    {
        _http = http;
        _time = time;
    }

    /// <summary>RFC 7009, best-effort: returns a sentence saying what happened, never throws for the server's answer.</summary>
    public async Task<string> RevokeAsync(Uri revocationEndpoint, ClientAuth client, string token, string tokenTypeHint, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(revocationEndpoint);
        ArgumentNullException.ThrowIfNull(client);
        var outcome = await RequestAsync(revocationEndpoint, client, [new("token", token), new("token_type_hint", tokenTypeHint)], ct).ConfigureAwait(false);
        return outcome.Status == 200 || outcome.Kind == TokenOutcomeKind.Ambiguous && outcome.Error == "unparsable_response"
            ? "revoked"
            : $"not revoked ({outcome.Describe()})";
    }

    public async Task<TokenOutcome> RequestAsync(Uri tokenEndpoint, ClientAuth client, IEnumerable<KeyValuePair<string, string>> parameters, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tokenEndpoint);
        ArgumentNullException.ThrowIfNull(client);
        var form = new List<KeyValuePair<string, string>>(parameters);
        using var request = new HttpRequestMessage(HttpMethod.Post, tokenEndpoint);
        request.Headers.ConnectionClose = true;
        switch (client.Method)
        {
            case "client_secret_basic":
                var credentials = $"{Uri.EscapeDataString(client.ClientId)}:{Uri.EscapeDataString(client.ClientSecret ?? string.Empty)}";
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));
                break;
            case "client_secret_post":
                form.Add(new("client_id", client.ClientId));
                form.Add(new("client_secret", client.ClientSecret ?? string.Empty));
                break;
            default:
                form.Add(new("client_id", client.ClientId));
                break;
        }

        request.Content = new FormUrlEncodedContent(form);
        OAuthHttp.OAuthResponse response;
        try
        {
            response = await _http.Value.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError is HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError or HttpRequestError.SecureConnectionError)
        {
            return new TokenOutcome(TokenOutcomeKind.NotSent, null, "network_error", $"could not reach {tokenEndpoint.GetLeftPart(UriPartial.Authority)}: {ex.HttpRequestError}", null, null, null);
        }
        catch (HttpRequestException ex)
        {
            return new TokenOutcome(TokenOutcomeKind.Ambiguous, null, "response_lost", $"the connection to {tokenEndpoint.GetLeftPart(UriPartial.Authority)} failed after the request was sent ({ex.HttpRequestError})", null, null, null);
        }
        catch (OAuthException ex) when (ex.Code is "timeout" or "too_large")
        {
            return new TokenOutcome(TokenOutcomeKind.Ambiguous, null, ex.Code, ex.Message, null, null, null);
        }

        var sent = form.Where(p => SecretParameters.Contains(p.Key)).Select(p => (string?)p.Value).Append(client.ClientSecret);
        return Classify(response, _time.GetUtcNow()).Masked(sent);
    }

    /// <summary>Classifies a token-endpoint answer (the table "Token-endpoint answers" in docs/failure-modes.md).</summary>
    internal static TokenOutcome Classify(OAuthHttp.OAuthResponse response, DateTimeOffset now)
    {
        var status = (int)response.Status;
        var json = response.TryParseJson();
        var error = json?.String("error");
        var description = json?.String("error_description");
        var requestId = response.RequestId;
        TokenOutcome Make(TokenOutcomeKind kind, TokenSet? tokens = null, TimeSpan? retryAfter = null) =>
            new(kind, tokens, error, description, status, retryAfter, requestId);

        if (error is not null)
        {
            return error switch
            {
                "temporarily_unavailable" or "server_error" => Make(TokenOutcomeKind.Transient, retryAfter: RetryAfter(response, now)),
                "invalid_grant" or "invalid_client" or "unauthorized_client" or "invalid_scope" or "invalid_target"
                    or "unsupported_grant_type" or "access_denied" or "expired_token" or "authorization_pending" or "slow_down" => Make(TokenOutcomeKind.Terminal),
                _ when status == 429 => Make(TokenOutcomeKind.Transient, retryAfter: RetryAfter(response, now)),
                _ when status >= 500 => Make(status is 502 or 504 ? TokenOutcomeKind.Ambiguous : TokenOutcomeKind.Transient),
                _ => Make(TokenOutcomeKind.Transient), // unknown code: transient; the engine makes it terminal after 3 in a row
            };
        }

        if (status == 200)
        {
            var accessToken = json?.String("access_token");
            if (string.IsNullOrEmpty(accessToken))
            {
                return Make(TokenOutcomeKind.Ambiguous) with { Error = "unparsable_response", ErrorDescription = "a 200 answer without an access_token" };
            }

            var e = json!.Value;
            return Make(TokenOutcomeKind.Success, new TokenSet(accessToken, e.String("token_type") ?? string.Empty, e.Long("expires_in"),
                e.String("refresh_token"), e.String("scope"), e.String("id_token"), e.Long("refresh_token_expires_in")));
        }

        return status switch
        {
            429 => Make(TokenOutcomeKind.Transient, retryAfter: RetryAfter(response, now)),
            502 or 504 => Make(TokenOutcomeKind.Ambiguous),
            >= 500 => Make(TokenOutcomeKind.Transient),
            _ => Make(TokenOutcomeKind.Transient) with { Error = "unexpected_response" },
        };
    }

    private static TimeSpan? RetryAfter(OAuthHttp.OAuthResponse response, DateTimeOffset now)
    {
        var retry = response.Headers.RetryAfter;
        return retry?.Delta ?? (retry?.Date is { } date ? date - now : null);
    }
}
