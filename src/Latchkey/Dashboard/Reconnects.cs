using System.Collections.Concurrent;
using System.Threading.Channels;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.Logging;

namespace Latchkey.Dashboard;

/// <summary>
/// Reconnects started from the dashboard: each runs the ordinary sign-in (<see cref="SignInService"/>: the stored
/// resource and issuer, the union of the scopes asked before and those the resource asks for now, PKCE, state and
/// iss checks) with the browser sent to the authorization server and brought back to the gateway's own
/// <c>/ui/callback</c>. The stored grant is replaced only when the new one is complete.
/// </summary>
/// <remarks>
/// <para><b>One OAuth client.</b> The sign-in is the composition root's (<see cref="Composition.LatchkeyServices.SignIn"/>),
/// on the same HTTP client and token endpoint client as the gateway's token engine.</para>
/// <para><b>Concurrency.</b> Any number of reconnects may be in flight; each owns its PKCE verifier and state. The
/// callback finds its reconnect by <c>state</c>, once; the grant flow then compares it in constant time.</para>
/// <para><b>Security.</b> The callback's query (it holds the authorization code) is never logged or shown.</para>
/// </remarks>
internal sealed partial class Reconnects(SignInService signIn, TimeProvider time, ILoggerFactory logs)
{
    private readonly ILogger _logger = logs.CreateLogger(DashboardEndpoints.LogCategory);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<string, GatewayRedirect> _pending = new(StringComparer.Ordinal);

    /// <summary>Starts a reconnect of <paramref name="name"/> for the session <paramref name="sessionId"/> and returns
    /// the authorization URL to send the browser to.</summary>
    /// <exception cref="OAuthException">The sign-in failed before the browser was needed (discovery, registration).</exception>
    public async Task<Uri> StartAsync(string name, string sessionId, string redirectUri, CancellationToken stopping)
    {
        var redirect = new GatewayRedirect(redirectUri, sessionId, name, this);
        var options = new SignInOptions { Name = name, Redirect = () => redirect, RequireRequestedScopes = true };
        redirect.SignIn = Task.Run(async () =>
        {
            using var progress = new StringWriter();
            return await signIn.SignInAsync(options, new BrowserLauncher(TextWriter.Null, noBrowser: true, time, getEnvironment: _ => null), progress, stopping).ConfigureAwait(false);
        }, CancellationToken.None);

        var opened = redirect.Opened.Task;
        var first = await Task.WhenAny(opened, redirect.SignIn, Task.Delay(StartTimeout, stopping)).ConfigureAwait(false);
        if (first == opened)
        {
            return await opened.ConfigureAwait(false);
        }

        if (first == redirect.SignIn)
        {
            await redirect.SignIn.ConfigureAwait(false); // throws the reason it failed
        }

        redirect.Cancel();
        throw new OAuthException("sign_in_timeout", "The authorization server did not answer within 30 seconds. Nothing was changed; try again.");
    }

    /// <summary>Delivers a callback to the reconnect its <c>state</c> names and waits for the sign-in to finish.
    /// Null when no reconnect in progress has that state.</summary>
    public async Task<(string SessionId, string Credential, Flash Outcome)?> CompleteAsync(IReadOnlyDictionary<string, string> query, CancellationToken ct)
    {
        if (!query.TryGetValue("state", out var state) || !_pending.TryRemove(state, out var redirect))
        {
            return null;
        }

        redirect.Deliver(query);
        try
        {
            var record = await redirect.SignIn!.WaitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            var m = record.Metadata;
            LogReconnected(_logger, record.Name);
            return (redirect.SessionId, redirect.Credential, new Flash(true,
                $"Reconnected '{record.Name}': signed in again at {m.Issuer}; scopes granted: {(m.ScopesGranted.Count == 0 ? "none named" : string.Join(' ', m.ScopesGranted))}; the token is valid until {m.ExpiresAt:u}{(record.Secrets.RefreshToken is null ? " (no refresh token was issued)" : " and is refreshed automatically")}."));
        }
        catch (OAuthException ex)
        {
            LogReconnectFailed(_logger, redirect.Credential, ex.Code);
            return (redirect.SessionId, redirect.Credential, new Flash(false, $"Reconnecting '{redirect.Credential}' failed: {ex.Message}"));
        }
        catch (Exception ex) when (ex is HttpRequestException or TimeoutException or StoreException)
        {
            LogReconnectFailed(_logger, redirect.Credential, ex.GetType().Name);
            return (redirect.SessionId, redirect.Credential, new Flash(false, $"Reconnecting '{redirect.Credential}' failed: {ex.Message} Nothing was changed."));
        }
    }

    private void Register(string state, GatewayRedirect redirect) => _pending[state] = redirect;

    private void Forget(string state) => _pending.TryRemove(state, out _);

    [LoggerMessage(20, LogLevel.Information, "Dashboard: reconnected {Credential}")]
    private static partial void LogReconnected(ILogger logger, string credential);

    [LoggerMessage(21, LogLevel.Warning, "Dashboard: reconnecting {Credential} failed: {Code}")]
    private static partial void LogReconnectFailed(ILogger logger, string credential, string code);

    /// <summary>The gateway's side of one reconnect's redirect: the URL to send the browser to, and the callback.</summary>
    private sealed class GatewayRedirect(string redirectUri, string sessionId, string credential, Reconnects owner) : IAuthorizationRedirect
    {
        private readonly Channel<IReadOnlyDictionary<string, string>> _callbacks = Channel.CreateUnbounded<IReadOnlyDictionary<string, string>>(new UnboundedChannelOptions { SingleReader = true });
        private string? _state;

        public TaskCompletionSource<Uri> Opened { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<CredentialRecord>? SignIn { get; set; }

        public string SessionId { get; } = sessionId;

        public string Credential { get; } = credential;

        public string RedirectUri { get; } = redirectUri;

        public void Open(Uri authorizationUrl)
        {
            _state = LoopbackListener.ParseQuery(authorizationUrl.Query).GetValueOrDefault("state")
                ?? throw new OAuthException("authorization_url_refused", "The authorization URL carries no state.");
            owner.Register(_state, this);
            Opened.TrySetResult(authorizationUrl);
        }

        /// <summary>Callbacks arrive here only when their state is this reconnect's (<see cref="CompleteAsync"/> finds
        /// the reconnect by it), so none is ignored in practice; one that were would leave the wait going on.</summary>
        public async Task<IReadOnlyDictionary<string, string>> WaitForCallbackAsync(Func<IReadOnlyDictionary<string, string>, CallbackAnswer> respond, CancellationToken ct)
        {
            while (true)
            {
                var query = await _callbacks.Reader.ReadAsync(ct).ConfigureAwait(false);
                if (respond(query).Verdict != CallbackVerdict.Ignore)
                {
                    return query; // the grant flow records whether the answer is acceptable; the dashboard shows the outcome
                }
            }
        }

        public void Deliver(IReadOnlyDictionary<string, string> query) => _callbacks.Writer.TryWrite(query);

        public void Cancel() => _callbacks.Writer.TryComplete(new OperationCanceledException("The reconnect was abandoned."));

        public void Dispose()
        {
            if (_state is not null)
            {
                owner.Forget(_state);
            }

            Cancel();
        }
    }
}
