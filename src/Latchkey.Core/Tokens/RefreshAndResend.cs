using System.Runtime.CompilerServices;

namespace Latchkey.Tokens;

/// <summary>
/// The one "refused → forced refresh → resend" policy, used by the gateway (every credential route, and so the MCP
/// proxy) and by the stdio bridge: send a request with a credential; when the upstream refuses the token itself (a
/// 401), ask the token engine for a refresh conditional on the refused token, and send the request again with the
/// replacement, a bounded number of times.
/// </summary>
/// <remarks>
/// <para><b>The refused token.</b> The forced refresh names the refused token (by its fingerprint), so the engine
/// refreshes only while it is still the stored one: N requests refused at once cause one refresh, and a refusal of a
/// token another process already replaced causes none (its replacement is handed back). The engine hands back a token
/// that is usable and before its refresh-ahead point, so a replacement is never one about to die.</para>
/// <para><b>What counts as the same token.</b> The replacement's text compared ordinally with the refused token's. When
/// the engine hands back the very token that was refused (a refresh backoff is running, or the grant has no refresh
/// token or client to refresh with), sending it again would only be refused again: the request is not resent
/// (<see cref="ResendEnd.NotReplaced"/>).</para>
/// <para><b>When the engine declines.</b> A token that a forced refresh produced and that is refused too while still
/// young is not refreshed again within an interval (<see cref="TokenEngine.RefreshSkipped"/>): an endpoint that
/// refuses every token would otherwise make every request spend the grant. The request is then not resent, and the
/// outcome carries the engine's reason (what happened and what to do), which callers show to the agent
/// (<see cref="ResendEnd.RefreshSkipped"/>). A refresh that fails, or whose new tokens are each already dead
/// when stored (<see cref="TokenEngine.ExpiredBeforeUse"/>, after the engine's own bounded retries), ends with
/// <see cref="ResendEnd.RefreshFailed"/> and the engine's answer.</para>
/// <para><b>How many resends.</b> The caller says, by what it needs:
/// <list type="bullet">
/// <item>The gateway (<c>UpstreamExchange</c>, and so the MCP proxy) resends once. A refusal there usually means a
/// token that was revoked or rotated elsewhere, which one refresh cures; the agent behind it gets the upstream's 401
/// with Latchkey's diagnostic if that fails too, and an agent's retry carries whatever token the engine holds by then.
/// A resend also keeps the request's body in memory (up to the retry limit) while it waits, so it stays at one.</item>
/// <item>The stdio bridge (<c>McpStdioBridge</c>) resends up to twice: it serves MCP servers whose tokens can live
/// seconds, and MCP clients start it cold, often many at once. A token handed out usable can still expire in flight
/// on a loaded machine (it is checked when it arrives, not when it leaves); so can its replacement, and once that
/// replacement has expired (or passed its refresh-ahead point) the engine refreshes it as a due token instead of
/// declining. The second resend keeps such a message from failing where the MCP client has no retry of its own to
/// fall back on.</item>
/// </list>
/// Once the last resend is refused too, the outcome is <see cref="ResendEnd.Refused"/> and no further refresh is
/// asked for.</para>
/// <para><b>A body that cannot go again.</b> When the request cannot be resent (a streamed body), the refresh still
/// happens, so the agent's own retry carries the new token (<see cref="ResendEnd.NotResent"/>).</para>
/// <para><b>Cost.</b> Sending with a credential in hand (the gateway's hot path) allocates nothing of its own when the
/// first answer is accepted: the request is a struct the caller passes by value, and the method's state machine comes
/// from a pool.</para>
/// </remarks>
internal static class RefreshAndResend
{
    /// <summary>Gets a credential from <paramref name="tokens"/>, then sends as <see cref="SendAsync{TCredential, TResponse, TRequest}(ITokenSource{TCredential}, string, TCredential, string, TRequest, int, CancellationToken)"/>;
    /// <see cref="ResendEnd.NoToken"/> when there is none, and nothing is sent.</summary>
    public static async ValueTask<ResendOutcome<TCredential, TResponse>> SendAsync<TCredential, TResponse, TRequest>(
        ITokenSource<TCredential> tokens, string name, TRequest request, int maxResends, CancellationToken ct)
        where TCredential : class
        where TRequest : struct, ITokenRequest<TCredential, TResponse>
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var (credential, result) = await tokens.GetAsync(name, ct).ConfigureAwait(false);
        if (credential is null || result.AccessToken is null)
        {
            return new(ResendEnd.NoToken, default!, null, result, 0);
        }

        return await SendAsync<TCredential, TResponse, TRequest>(tokens, name, credential, result.AccessToken, request, maxResends, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends <paramref name="request"/> with <paramref name="credential"/> (whose token is <paramref name="token"/>),
    /// and after a refusal with the engine's replacement, at most <paramref name="maxResends"/> more times.
    /// </summary>
    /// <returns>The last answer and how it ended; the caller owns (and disposes) its response. Responses that were
    /// sent again are let go of through <see cref="ITokenRequest{TCredential, TResponse}.Discard"/>.</returns>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<ResendOutcome<TCredential, TResponse>> SendAsync<TCredential, TResponse, TRequest>(
        ITokenSource<TCredential> tokens, string name, TCredential credential, string token, TRequest request, int maxResends, CancellationToken ct)
        where TCredential : class
        where TRequest : struct, ITokenRequest<TCredential, TResponse>
    {
        ArgumentNullException.ThrowIfNull(tokens);
        for (var resends = 0; ; resends++)
        {
            var response = await request.SendAsync(credential, ct).ConfigureAwait(false);
            if (!request.IsRefused(response))
            {
                return new(ResendEnd.Answered, response, credential, null, resends);
            }

            if (resends >= maxResends)
            {
                return new(ResendEnd.Refused, response, credential, null, resends);
            }

            (TCredential? Credential, TokenResult Result) replacement;
            try
            {
                replacement = await tokens.RefreshAfterRejectionAsync(name, token, ct).ConfigureAwait(false);
            }
            catch
            {
                request.Discard(response);
                throw;
            }

            var (fresh, result) = replacement;
            ResendEnd? stop = fresh is null || result.AccessToken is null ? ResendEnd.RefreshFailed
                : result.Reason is { Code: TokenEngine.RefreshSkipped } ? ResendEnd.RefreshSkipped
                : !request.CanResend ? ResendEnd.NotResent
                : string.Equals(result.AccessToken, token, StringComparison.Ordinal) ? ResendEnd.NotReplaced
                : null;
            if (stop is { } end)
            {
                return new(end, response, credential, result, resends);
            }

            request.Discard(response);
            credential = fresh!;
            token = result.AccessToken!;
        }
    }

    /// <summary>The token engine as a <see cref="ITokenSource{TCredential}"/> whose credential is the engine's answer
    /// itself (for a sender that needs nothing but the token and its expiry).</summary>
    public static ITokenSource<TokenResult> Tokens(TokenEngine engine) => new EngineTokens(engine);

    private sealed class EngineTokens(TokenEngine engine) : ITokenSource<TokenResult>
    {
        public async ValueTask<(TokenResult? Credential, TokenResult Result)> GetAsync(string name, CancellationToken ct) =>
            Usable(await engine.GetAccessTokenAsync(name, null, ct).ConfigureAwait(false));

        public async ValueTask<(TokenResult? Credential, TokenResult Result)> RefreshAfterRejectionAsync(string name, string refusedToken, CancellationToken ct) =>
            Usable(await engine.GetAccessTokenAsync(name, engine.Fingerprint(refusedToken), ct).ConfigureAwait(false));

        private static (TokenResult?, TokenResult) Usable(TokenResult result) =>
            (result.Status == TokenStatus.Ok && result.AccessToken is not null ? result : null, result);
    }
}

/// <summary>Where <see cref="RefreshAndResend"/> gets a credential to send, and its replacement after a refusal. When
/// a credential is returned, the answer's <see cref="TokenResult.AccessToken"/> is its token.</summary>
/// <typeparam name="TCredential">What a request is sent with: the token, and whatever the sender needs with it.</typeparam>
internal interface ITokenSource<TCredential>
    where TCredential : class
{
    /// <summary>The credential to send for <paramref name="name"/> now, or null with the engine's answer saying why.</summary>
    ValueTask<(TCredential? Credential, TokenResult Result)> GetAsync(string name, CancellationToken ct);

    /// <summary>After an upstream refused <paramref name="refusedToken"/>: the token engine's refresh, conditional on
    /// that token still being the stored one, and the credential to send instead (or null with the engine's answer).</summary>
    ValueTask<(TCredential? Credential, TokenResult Result)> RefreshAfterRejectionAsync(string name, string refusedToken, CancellationToken ct);
}

/// <summary>One request that <see cref="RefreshAndResend"/> sends, and may send again with another credential.
/// Implemented by a struct, so that passing it costs no allocation.</summary>
internal interface ITokenRequest<in TCredential, TResponse>
{
    /// <summary>Whether the request can go out again (its body was kept).</summary>
    bool CanResend { get; }

    /// <summary>Sends the request with <paramref name="credential"/>.</summary>
    ValueTask<TResponse> SendAsync(TCredential credential, CancellationToken ct);

    /// <summary>Whether the upstream refused the token itself (a 401 for a credential a refresh can replace).</summary>
    bool IsRefused(TResponse response);

    /// <summary>Lets go of a refused answer that will not be used (the request is sent again, or the send failed).</summary>
    void Discard(TResponse response);
}

/// <summary>How <see cref="RefreshAndResend"/> ended.</summary>
internal enum ResendEnd
{
    /// <summary>The last answer was not a refusal (it may be any other status).</summary>
    Answered,

    /// <summary>There was no credential to send in the first place; nothing was sent. The engine's answer says why.</summary>
    NoToken,

    /// <summary>Refused, and the forced refresh gave no usable token (it failed, or each new token was dead on
    /// arrival). The engine's answer says why and what to do.</summary>
    RefreshFailed,

    /// <summary>Refused, and the engine declined to refresh again (<see cref="TokenEngine.RefreshSkipped"/>); not
    /// resent. The engine's answer carries the reason to show.</summary>
    RefreshSkipped,

    /// <summary>Refused, refreshed (the engine's answer holds the replacement), and not resent: the request cannot
    /// go out again.</summary>
    NotResent,

    /// <summary>Refused, and the engine handed back the very token that was refused; not resent.</summary>
    NotReplaced,

    /// <summary>Refused after the most resends the caller allows; no further refresh was asked for.</summary>
    Refused,
}

/// <summary>What <see cref="RefreshAndResend"/> ended with.</summary>
/// <param name="End">How it ended.</param>
/// <param name="Response">The last answer (default when <see cref="ResendEnd.NoToken"/>); the caller disposes it.</param>
/// <param name="Credential">What the last answer was sent with (null when <see cref="ResendEnd.NoToken"/>).</param>
/// <param name="Token">The engine's last answer after a refusal, or to the first request for a token when
/// <see cref="ResendEnd.NoToken"/>; null when none was asked for since the last send.</param>
/// <param name="Resends">How many times the request was sent again.</param>
internal readonly record struct ResendOutcome<TCredential, TResponse>(ResendEnd End, TResponse Response, TCredential? Credential, TokenResult? Token, int Resends)
    where TCredential : class;
