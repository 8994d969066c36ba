namespace Latchkey.Http;

/// <summary>
/// The one place where every request Latchkey sends with a credential or token is checked against
/// <see cref="UrlPolicy"/>, just before it leaves: the gateway's forwarder (<c>/c</c>, <c>/r</c>, <c>/mcp</c>), the
/// stdio bridge and the OAuth client all send through it. A refused request throws
/// <see cref="UrlRefusedException"/> and nothing is sent.
/// </summary>
/// <remarks>
/// <para><b>Opt-in.</b> Plain <c>http</c> to another machine passes only when the sender marked the request with
/// <see cref="PermitInsecureHttp"/>, which callers do exactly when the credential's stored metadata records the
/// user's <c>--allow-insecure-http</c>. A caller that forgets gets the strict policy: the default is closed.</para>
/// <para><b>Cost.</b> An https request is checked without allocating (the request's option bag is only looked at
/// for a URL that needs the opt-in).</para>
/// <para><b>At connect time.</b> The handlers behind it connect through <see cref="UrlPolicy.ConnectAsync(SocketsHttpConnectionContext, CancellationToken)"/>,
/// which refuses a plain-http connection to <c>localhost</c> that resolved elsewhere; the handler wraps that refusal
/// in an <see cref="HttpRequestException"/>, and this one hands callers the <see cref="UrlRefusedException"/> itself,
/// so every refusal of the policy reads the same.</para>
/// </remarks>
internal sealed class UrlPolicyHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private static readonly HttpRequestOptionsKey<bool> AllowInsecureHttp = new("latchkey.allow-insecure-http");

    /// <summary>Lets <paramref name="request"/> go over plain http to another machine, when <paramref name="allowed"/>
    /// (the credential's recorded opt-in). Does nothing (and allocates nothing) when it is false.</summary>
    public static void PermitInsecureHttp(HttpRequestMessage request, bool allowed)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (allowed)
        {
            request.Options.Set(AllowInsecureHttp, true);
        }
    }

    /// <summary>Throws <see cref="UrlRefusedException"/> when the request's URL may not be sent to.</summary>
    public static void Check(HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var verdict = UrlPolicy.Check(request.RequestUri, allowInsecureHttp: false);
        if (verdict == UrlVerdict.InsecureHttp && request.Options.TryGetValue(AllowInsecureHttp, out var allowed) && allowed)
        {
            verdict = UrlPolicy.Check(request.RequestUri, allowInsecureHttp: true);
        }

        if (verdict != UrlVerdict.Allowed)
        {
            throw new UrlRefusedException(request.RequestUri, verdict);
        }
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Check(request);
        try
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex) when (ex.InnerException is UrlRefusedException refused)
        {
            throw refused; // refused as the connection was made: nothing was sent
        }
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Check(request);
        try
        {
            return base.Send(request, cancellationToken);
        }
        catch (HttpRequestException ex) when (ex.InnerException is UrlRefusedException refused)
        {
            throw refused;
        }
    }
}

/// <summary>
/// A request refused by <see cref="UrlPolicyHandler"/> before anything was sent. An
/// <see cref="HttpRequestException"/>, so a caller that does not know it still treats it as "not sent".
/// </summary>
internal sealed class UrlRefusedException(Uri? url, UrlVerdict verdict)
    : HttpRequestException(HttpRequestError.Unknown, UrlPolicy.Describe(verdict, Shown(url)))
{
    /// <summary>The URL's scheme, host and port (no path or query, which may carry more than a location).</summary>
    public string Origin { get; } = Shown(url);

    public UrlVerdict Verdict { get; } = verdict;

    /// <summary>The sentence naming the problem (the exception's message).</summary>
    public string Problem => Message;

    private static string Shown(Uri? url) => url is { IsAbsoluteUri: true } ? url.GetLeftPart(UriPartial.Authority) : url?.OriginalString ?? "(none)";
}
