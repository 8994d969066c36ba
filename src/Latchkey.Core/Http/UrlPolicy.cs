using System.Net;
using System.Net.Sockets;

namespace Latchkey.Http;

/// <summary>What <see cref="UrlPolicy.Check"/> found wrong with a URL, or <see cref="Allowed"/>.</summary>
internal enum UrlVerdict
{
    Allowed,

    /// <summary>Not an absolute URL (or no URL at all).</summary>
    NotAbsolute,

    /// <summary>A scheme other than <c>https</c> and <c>http</c>.</summary>
    Scheme,

    /// <summary>Plain <c>http</c> to another machine, without the credential's recorded opt-in.</summary>
    InsecureHttp,

    /// <summary>A user name or password in the URL.</summary>
    UserInfo,

    /// <summary>A fragment (<c>#…</c>).</summary>
    Fragment,

    /// <summary>Plain <c>http</c> to <c>localhost</c>, but the name resolved to an address that is not loopback
    /// (found as the connection is made: <see cref="UrlPolicy.ConnectAsync(SocketsHttpConnectionContext, CancellationToken)"/>).</summary>
    NotLoopback,
}

/// <summary>
/// Which URLs Latchkey will send a credential to: <c>https</c> only, except hosts that are this machine by their very
/// spelling, <c>localhost</c> and the literal loopback addresses (127.0.0.0/8, <c>[::1]</c>), where <c>http</c> is
/// allowed, because nothing leaves the machine. No user info, no fragment. Plain <c>http</c> to another machine only
/// for a credential added with <c>--allow-insecure-http</c> (recorded as <c>CredentialMetadata.AllowInsecureHttp</c>),
/// and never for an authorization server.
/// </summary>
/// <remarks>
/// <para>Checked when a URL is added (<see cref="TryParse(string?, bool, out Uri, out string)"/>) and again on every
/// request as it leaves (<see cref="UrlPolicyHandler"/>), so a URL that changed in the store since it was added is
/// refused before anything is sent.</para>
/// <para><b>What counts as this machine.</b> Only <c>localhost</c> and literal loopback addresses. Other names under
/// <c>.localhost</c> (<c>api.localhost</c>) are <i>not</i>: RFC 6761 asks resolvers to answer them with loopback, but
/// .NET resolves them like any name, through <c>/etc/hosts</c> and the DNS servers of <c>/etc/resolv.conf</c>, so
/// whoever answers for that name (a network's DNS server, a line in a hosts file) decides where the credential goes
/// in clear. They need <c>https</c> or the opt-in like any other name.</para>
/// <para><b>Checked again as the connection is made.</b> Even <c>localhost</c> is a name the resolver is asked about,
/// so the one name still trusted here is verified where it is used: every handler that sends a credential connects
/// through <see cref="ConnectAsync(SocketsHttpConnectionContext, CancellationToken)"/>, which, for plain <c>http</c>
/// to a host this policy lets through as this machine, resolves the name itself and connects only when
/// <i>every</i> address it resolved to is loopback (otherwise <see cref="UrlVerdict.NotLoopback"/>, nothing
/// connected). A connection is made for one scheme, host and port, so this holds for every request it later
/// carries; the opt-in does not lift it (the user asked for this machine, not for wherever the name points).</para>
/// </remarks>
internal static class UrlPolicy
{
    /// <summary>Parses and checks a URL a credential may be sent to; returns a sentence naming the problem.</summary>
    public static bool TryParse(string? text, out Uri uri, out string problem) => TryParse(text, allowInsecureHttp: false, out uri, out problem);

    /// <summary>
    /// Parses and checks a URL a credential may be sent to; with <paramref name="allowInsecureHttp"/> (the user's
    /// explicit opt-in), plain <c>http</c> to another machine is accepted too.
    /// </summary>
    public static bool TryParse(string? text, bool allowInsecureHttp, out Uri uri, out string problem)
    {
        uri = null!;
        // On Unix, Uri reads "/path" as an absolute file URI; that is a relative reference here.
        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(text, UriKind.Absolute, out var parsed)
            || (parsed.IsFile && !text.StartsWith("file:", StringComparison.OrdinalIgnoreCase)))
        {
            problem = Describe(UrlVerdict.NotAbsolute, text);
            return false;
        }

        var verdict = Check(parsed, allowInsecureHttp);
        if (verdict != UrlVerdict.Allowed)
        {
            problem = Describe(verdict, text);
            return false;
        }

        uri = parsed;
        problem = string.Empty;
        return true;
    }

    /// <summary>
    /// Checks a parsed URL. Allocation-free for the common case (an https URL without user info or fragment): it
    /// runs on every request the gateway forwards.
    /// </summary>
    public static UrlVerdict Check(Uri? uri, bool allowInsecureHttp)
    {
        if (uri is null || !uri.IsAbsoluteUri)
        {
            return UrlVerdict.NotAbsolute;
        }

        var scheme = uri.Scheme;
        var https = string.Equals(scheme, Uri.UriSchemeHttps, StringComparison.Ordinal);
        if (!https && !string.Equals(scheme, Uri.UriSchemeHttp, StringComparison.Ordinal))
        {
            return UrlVerdict.Scheme;
        }

        if (!https && !allowInsecureHttp && !IsLoopback(uri))
        {
            return UrlVerdict.InsecureHttp;
        }

        if (uri.UserInfo.Length > 0)
        {
            return UrlVerdict.UserInfo;
        }

        return uri.Fragment.Length > 0 ? UrlVerdict.Fragment : UrlVerdict.Allowed;
    }

    /// <summary>A sentence naming what is wrong with <paramref name="url"/> (never holds more than the URL).</summary>
    public static string Describe(UrlVerdict verdict, string? url) => verdict switch
    {
        UrlVerdict.Allowed => string.Empty,
        UrlVerdict.NotAbsolute => $"'{url}' is not an absolute URL; give one like https://api.example.com.",
        UrlVerdict.Scheme => $"'{url}' uses the scheme '{SchemeOf(url)}'; only https (and http to this machine) is allowed.",
        UrlVerdict.InsecureHttp => $"'{url}' is plain http to another machine, which would send the credential in clear; use https.",
        UrlVerdict.UserInfo => "The URL must not carry a user name or password; Latchkey injects the credential itself.",
        UrlVerdict.Fragment => $"'{url}' has a fragment (#…), which a server never sees; remove it.",
        UrlVerdict.NotLoopback => $"'{url}' is plain http to a name for this machine, but the name resolves to an address that is not loopback (check /etc/hosts); use https or 127.0.0.1.",
        _ => $"'{url}' is not allowed.",
    };

    /// <summary>
    /// Whether the URL's host is this machine by its spelling: <c>localhost</c>, or a literal address in 127.0.0.0/8 or
    /// <c>::1</c>. Not other names under <c>.localhost</c>, which are resolved like any name (see the remarks).
    /// </summary>
    public static bool IsLoopback(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        return IsLoopbackHost(uri.IdnHost);
    }

    /// <summary>Whether a host (as a URL or <see cref="DnsEndPoint"/> names it) is this machine by its spelling.</summary>
    public static bool IsLoopbackHost(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(host.AsSpan().Trim("[]"), out var address) && IsLoopbackAddress(address));
    }

    /// <summary>
    /// The <see cref="SocketsHttpHandler.ConnectCallback"/> of every handler that sends a credential: connects as
    /// .NET's own does (a dual-mode TCP socket, no Nagle), except that a plain <c>http</c> connection to a host
    /// <see cref="IsLoopbackHost"/> accepts resolves the name first and connects only when every address is loopback.
    /// </summary>
    /// <exception cref="HttpRequestException">Wrapped by the handler around <see cref="UrlRefusedException"/>
    /// (<see cref="UrlVerdict.NotLoopback"/>) when a name for this machine resolved elsewhere; nothing was connected.
    /// <see cref="UrlPolicyHandler"/> unwraps it.</exception>
    public static ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        return ConnectAsync(context.DnsEndPoint, context.InitialRequestMessage.RequestUri, ResolveAsync, cancellationToken);
    }

    /// <summary><see cref="ConnectAsync(SocketsHttpConnectionContext, CancellationToken)"/> with the name resolution given (for tests).</summary>
    internal static async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, Uri? requestUri, Func<string, CancellationToken, Task<IPAddress[]>> resolve, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(resolve);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (requestUri is { IsAbsoluteUri: true } && requestUri.Scheme == Uri.UriSchemeHttp && IsLoopbackHost(endpoint.Host))
            {
                var addresses = IPAddress.TryParse(endpoint.Host.AsSpan().Trim("[]"), out var literal) ? [literal]
                    : await resolve(endpoint.Host, cancellationToken).ConfigureAwait(false);
                if (addresses.Length == 0 || !Array.TrueForAll(addresses, IsLoopbackAddress))
                {
                    throw new UrlRefusedException(requestUri, UrlVerdict.NotLoopback);
                }

                await socket.ConnectAsync(addresses, endpoint.Port, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            }

            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) => Dns.GetHostAddressesAsync(host, cancellationToken);

    private static bool IsLoopbackAddress(IPAddress address) =>
        IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    /// <summary>Whether a URL is plain http to another machine: the case <c>--allow-insecure-http</c> is for.</summary>
    public static bool NeedsInsecureOptIn(Uri uri) => uri.Scheme == Uri.UriSchemeHttp && !IsLoopback(uri);

    private static string SchemeOf(string? url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var parsed) ? parsed.Scheme : url?.Split(':')[0] ?? string.Empty;
}
