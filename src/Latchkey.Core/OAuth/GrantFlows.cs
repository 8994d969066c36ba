using System.Security.Cryptography;
using System.Text;
using Latchkey.Diagnostics;
using Latchkey.Http;
using Latchkey.Store;

namespace Latchkey.OAuth;

/// <summary>What a sign-in asks for: the server, the client, the resource (RFC 8707) and the scopes.</summary>
internal sealed record GrantRequest(AuthorizationServerMetadata Server, ClientRegistration Client, string? ClientSecret, string? Resource, IReadOnlyList<string> Scopes)
{
    public ClientAuth Auth => new(Client.ClientId, Client.AuthMethod, ClientSecret);

    public override string ToString() => $"GrantRequest({Server.Issuer}, {Client.ClientId}, {Resource}, {string.Join(' ', Scopes)})";
}

/// <summary>
/// The grant flows of a sign-in: authorization code with PKCE S256, <c>state</c>, <c>resource</c> and the RFC 9207
/// <c>iss</c> check; the RFC 8628 device authorization grant; and client credentials. Each call owns all of its
/// state (verifier, state, listener), so concurrent sign-ins share nothing and none can corrupt another's request.
/// </summary>
internal sealed class GrantFlows(OAuthHttp http, TokenEndpointClient tokens, TimeProvider time)
{
    /// <summary>How long a sign-in waits for the browser to come back.</summary>
    public static readonly TimeSpan SignInTimeout = TimeSpan.FromMinutes(10);

    public Task<TokenSet> AuthorizationCodeAsync(GrantRequest request, BrowserLauncher browser, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(browser);
        return AuthorizationCodeAsync(request, new LoopbackRedirect(browser), ct);
    }

    /// <summary>The authorization-code grant through <paramref name="redirect"/>, which this call owns and disposes.</summary>
    public async Task<TokenSet> AuthorizationCodeAsync(GrantRequest request, IAuthorizationRedirect redirect, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(redirect);
        using var listener = redirect;
        var server = request.Server;
        if (server.AuthorizationEndpoint is null)
        {
            throw new OAuthException("metadata_invalid", $"The authorization server {server.Issuer} has no authorization_endpoint; try --device or --client-credentials.");
        }

        var pkce = Pkce.Create();
        var state = Pkce.NewState();
        var query = new List<KeyValuePair<string, string>>
        {
            new("response_type", "code"),
            new("client_id", request.Client.ClientId),
            new("redirect_uri", listener.RedirectUri),
            new("code_challenge", pkce.Challenge),
            new("code_challenge_method", "S256"),
            new("state", state),
        };
        if (request.Scopes.Count > 0)
        {
            query.Add(new("scope", string.Join(' ', request.Scopes)));
        }

        if (request.Resource is not null)
        {
            query.Add(new("resource", request.Resource));
        }

        var authorize = new UriBuilder(server.AuthorizationEndpoint)
        {
            Query = (server.AuthorizationEndpoint.Query.TrimStart('?') is { Length: > 0 } existing ? existing + "&" : string.Empty) + Encode(query),
        }.Uri;
        if (!UrlPolicy.TryParse(authorize.AbsoluteUri, out _, out var problem))
        {
            throw new OAuthException("authorization_url_refused", $"The authorization endpoint is not safe to open: {problem}");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(SignInTimeout);
        listener.Open(authorize);
        string? failure = null;
        IReadOnlyDictionary<string, string> callback;
        try
        {
            callback = await listener.WaitForCallbackAsync(q =>
            {
                // A wrong or missing state is not this sign-in's answer: any local process can send one to the
                // loopback port. It must not end the sign-in; the right answer may still come.
                if (!StateMatches(q, state))
                {
                    return new CallbackAnswer(CallbackVerdict.Ignore, "This request does not carry the state of the sign-in Latchkey is waiting for, so it was ignored and the sign-in goes on. If you did not expect this page, another program on this computer sent it.");
                }

                failure = CheckCallback(q, state, server);
                return failure is null
                    ? new CallbackAnswer(CallbackVerdict.Accept, "You are signed in. You can close this window and return to the terminal.")
                    : new CallbackAnswer(CallbackVerdict.Refuse, $"Latchkey refused this sign-in: {failure} Nothing was changed. Return to the terminal.");
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new OAuthException("sign_in_timeout", $"Nobody came back from the browser within {SignInTimeout.TotalMinutes:0} minutes. Nothing was changed; run the command again.");
        }

        if (failure is not null)
        {
            throw new OAuthException(failure.StartsWith("The authorization server refused", StringComparison.Ordinal) ? "authorization_denied" : "callback_invalid", failure);
        }

        var parameters = new List<KeyValuePair<string, string>>
        {
            new("grant_type", "authorization_code"),
            new("code", callback["code"]),
            new("redirect_uri", listener.RedirectUri),
            new("code_verifier", pkce.Verifier),
        };
        if (request.Resource is not null)
        {
            parameters.Add(new("resource", request.Resource));
        }

        return Require(await tokens.RequestAsync(server.TokenEndpoint, request.Auth, parameters, ct).ConfigureAwait(false), "the authorization code exchange");
    }

    /// <summary>Whether the callback carries <paramref name="expectedState"/> (compared in constant time).</summary>
    internal static bool StateMatches(IReadOnlyDictionary<string, string> q, string expectedState) =>
        q.TryGetValue("state", out var state) && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(state), Encoding.UTF8.GetBytes(expectedState));

    /// <summary>Checks the callback's <c>state</c> and <c>iss</c> (RFC 9207) before anything in it is used.</summary>
    internal static string? CheckCallback(IReadOnlyDictionary<string, string> q, string expectedState, AuthorizationServerMetadata server)
    {
        if (!StateMatches(q, expectedState))
        {
            return "The answer's state does not match the sign-in Latchkey started (a stale or forged redirect).";
        }

        q.TryGetValue("iss", out var iss);
        if (iss is null && server.IssParameterSupported)
        {
            return $"The answer carries no iss parameter, though {server.Issuer} says it sends one (RFC 9207); it may come from another server.";
        }

        if (iss is not null && !string.Equals(iss, server.Issuer, StringComparison.Ordinal))
        {
            // Never act on or show the error fields of an answer from the wrong issuer.
            return $"The answer says it comes from '{iss}', not from {server.Issuer} (RFC 9207 mix-up defence).";
        }

        if (q.TryGetValue("error", out var error))
        {
            q.TryGetValue("error_description", out var description);
            return $"The authorization server refused the sign-in ({ServerText.Quote(error, [], ServerText.MaxCodeLength)}{(string.IsNullOrEmpty(description) ? string.Empty : ": " + ServerText.Quote(description, []))}).";
        }

        return q.TryGetValue("code", out var code) && code.Length > 0 ? null : "The answer carries no authorization code.";
    }

    /// <summary>RFC 8628: shows the code and URL on <paramref name="error"/>, then polls, honouring <c>slow_down</c>.</summary>
    public async Task<TokenSet> DeviceAsync(GrantRequest request, TextWriter error, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(error);
        var endpoint = request.Server.DeviceAuthorizationEndpoint
            ?? throw new OAuthException("device_unsupported", $"The authorization server {request.Server.Issuer} does not offer the device flow (no device_authorization_endpoint). Sign in with the browser instead, from a machine that has one.");
        var form = new List<KeyValuePair<string, string>>();
        if (request.Scopes.Count > 0)
        {
            form.Add(new("scope", string.Join(' ', request.Scopes)));
        }

        if (request.Resource is not null)
        {
            form.Add(new("resource", request.Resource));
        }

        using var authorization = new HttpRequestMessage(HttpMethod.Post, endpoint);
        if (request.Client.AuthMethod == "client_secret_basic")
        {
            authorization.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Uri.EscapeDataString(request.Client.ClientId)}:{Uri.EscapeDataString(request.ClientSecret ?? string.Empty)}")));
        }
        else
        {
            form.Add(new("client_id", request.Client.ClientId));
            if (request.Client.AuthMethod == "client_secret_post")
            {
                form.Add(new("client_secret", request.ClientSecret ?? string.Empty));
            }
        }

        authorization.Content = new FormUrlEncodedContent(form);
        var response = await http.SendAsync(authorization, ct).ConfigureAwait(false);
        var json = response.TryParseJson();
        if (!response.IsSuccess || json is null)
        {
            throw new OAuthException("device_authorization_failed", $"The device authorization request to {endpoint} failed (HTTP {(int)response.Status}{(json?.String("error") is { } e ? $", {e}" : string.Empty)}).");
        }

        var deviceCode = json.Value.String("device_code") ?? throw new OAuthException("device_authorization_failed", $"{endpoint} answered without a device_code.");
        var userCode = json.Value.String("user_code") ?? throw new OAuthException("device_authorization_failed", $"{endpoint} answered without a user_code.");
        var verification = json.Value.String("verification_uri") ?? throw new OAuthException("device_authorization_failed", $"{endpoint} answered without a verification_uri.");
        var complete = json.Value.String("verification_uri_complete");
        var interval = TimeSpan.FromSeconds(Math.Max(1, json.Value.Long("interval") ?? 5));
        var expires = time.GetUtcNow() + TimeSpan.FromSeconds(Math.Clamp(json.Value.Long("expires_in") ?? 600, 30, 3600));
        foreach (var url in new[] { verification, complete })
        {
            if (url is not null && !UrlPolicy.TryParse(url, out _, out var problem))
            {
                throw new OAuthException("authorization_url_refused", $"The verification URL is not safe to open: {problem}");
            }
        }

        error.WriteLine($"To sign in, open {verification} on any device and enter the code: {userCode}");
        if (complete is not null)
        {
            error.WriteLine($"Or open: {complete}");
        }

        error.WriteLine("Waiting for you to approve…");
        error.Flush();
        while (true)
        {
            await Task.Delay(interval, time, ct).ConfigureAwait(false);
            if (time.GetUtcNow() > expires)
            {
                throw new OAuthException("device_code_expired", "The device code expired before it was approved. Nothing was changed; run the command again.");
            }

            var parameters = new List<KeyValuePair<string, string>>
            {
                new("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                new("device_code", deviceCode),
            };
            if (request.Resource is not null)
            {
                parameters.Add(new("resource", request.Resource));
            }

            var outcome = await tokens.RequestAsync(request.Server.TokenEndpoint, request.Auth, parameters, ct).ConfigureAwait(false);
            switch (outcome.Error)
            {
                case "authorization_pending":
                    continue;
                case "slow_down":
                    interval += TimeSpan.FromSeconds(5);
                    continue;
                case "access_denied":
                    throw new OAuthException("authorization_denied", "The sign-in was denied on the verification page. Nothing was changed.");
                case "expired_token":
                    throw new OAuthException("device_code_expired", "The device code expired before it was approved. Nothing was changed; run the command again.");
            }

            if (outcome.Kind is TokenOutcomeKind.Transient or TokenOutcomeKind.NotSent)
            {
                continue; // the server is briefly unavailable: keep polling until the code expires
            }

            return Require(outcome, "the device code exchange");
        }
    }

    public async Task<TokenSet> ClientCredentialsAsync(GrantRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var parameters = new List<KeyValuePair<string, string>> { new("grant_type", "client_credentials") };
        if (request.Scopes.Count > 0)
        {
            parameters.Add(new("scope", string.Join(' ', request.Scopes)));
        }

        if (request.Resource is not null)
        {
            parameters.Add(new("resource", request.Resource));
        }

        return Require(await tokens.RequestAsync(request.Server.TokenEndpoint, request.Auth, parameters, ct).ConfigureAwait(false), "the client credentials grant");
    }

    /// <summary>RFC 7009, best-effort (<see cref="TokenEndpointClient.RevokeAsync"/>).</summary>
    public Task<string> RevokeAsync(Uri revocationEndpoint, ClientAuth client, string token, string tokenTypeHint, CancellationToken ct) =>
        tokens.RevokeAsync(revocationEndpoint, client, token, tokenTypeHint, ct);

    private static TokenSet Require(TokenOutcome outcome, string what) =>
        outcome.Kind == TokenOutcomeKind.Success
            ? outcome.Tokens!
            : throw new OAuthException(outcome.Error ?? "token_request_failed",
                $"The authorization server refused {what}: {outcome.Describe()}{(outcome.RequestId is null ? string.Empty : $" (request id {outcome.RequestId})")}. Nothing was changed.");

    private static string Encode(IEnumerable<KeyValuePair<string, string>> pairs) =>
        string.Join('&', pairs.Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));
}
