namespace Latchkey.OAuth;

/// <summary>
/// Where the browser is sent for the authorization-code grant and where it comes back: the CLI's RFC 8252 loopback
/// listener (<see cref="LoopbackRedirect"/>), or the gateway's own <c>/ui/callback</c> route for the dashboard.
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> One instance serves one sign-in: <see cref="Open"/> once, then
/// <see cref="WaitForCallbackAsync"/> once.</para>
/// <para><b>Security.</b> The callback's query is handed to the grant flow, which checks <c>state</c> and <c>iss</c>
/// before anything in it is used; an implementation never logs the query (it holds the authorization code).</para>
/// </remarks>
internal interface IAuthorizationRedirect : IDisposable
{
    /// <summary>The exact redirect URI sent in the authorization request and the code exchange.</summary>
    string RedirectUri { get; }

    /// <summary>Sends the person to the authorization URL (opens a browser, or redirects the one already there).</summary>
    void Open(Uri authorizationUrl);

    /// <summary>Waits for the redirect back, answers it with the page <paramref name="respond"/> describes, and returns
    /// its query parameters. A request <paramref name="respond"/> says to <see cref="CallbackVerdict.Ignore"/> is
    /// answered and then forgotten: the wait goes on (until <paramref name="ct"/>).</summary>
    Task<IReadOnlyDictionary<string, string>> WaitForCallbackAsync(Func<IReadOnlyDictionary<string, string>, CallbackAnswer> respond, CancellationToken ct);
}

/// <summary>What a sign-in makes of a request to its redirect URI.</summary>
internal enum CallbackVerdict
{
    /// <summary>The answer to this sign-in, and it is good: the wait ends.</summary>
    Accept,

    /// <summary>The answer to this sign-in (its <c>state</c> matches), and it says no or is wrong: the wait ends.</summary>
    Refuse,

    /// <summary>Not the answer to this sign-in (a wrong or missing <c>state</c>: anyone on this machine can send
    /// one to a loopback port): answered plainly, and the wait goes on.</summary>
    Ignore,
}

/// <summary>The verdict on a callback and the sentence its page shows.</summary>
internal readonly record struct CallbackAnswer(CallbackVerdict Verdict, string Message);

/// <summary>The CLI's redirect: a loopback listener on an ephemeral port, and the browser the launcher opens. The
/// redirect page the launcher writes (the authorization URL carries the sign-in's <c>state</c>) lives until the
/// sign-in ends, that is until this is disposed.</summary>
internal sealed class LoopbackRedirect(BrowserLauncher browser) : IAuthorizationRedirect
{
    private readonly LoopbackListener _listener = new(browser.Notices);
    private RedirectPage? _page;

    public string RedirectUri => _listener.RedirectUri;

    public void Open(Uri authorizationUrl)
    {
        _page?.Dispose();
        _page = browser.Open(authorizationUrl, GrantFlows.SignInTimeout);
    }

    public Task<IReadOnlyDictionary<string, string>> WaitForCallbackAsync(Func<IReadOnlyDictionary<string, string>, CallbackAnswer> respond, CancellationToken ct) =>
        _listener.WaitForCallbackAsync(respond, ct);

    public void Dispose()
    {
        _page?.Dispose();
        _listener.Dispose();
    }
}
