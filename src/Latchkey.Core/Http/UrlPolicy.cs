using System.Net;

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
}

/// <summary>
/// Which URLs Latchkey will send a credential to: <c>https</c> only, except loopback hosts (<c>localhost</c>,
/// 127.0.0.0/8, <c>::1</c>) where <c>http</c> is allowed, because nothing leaves the machine. No user info, no
/// fragment. Plain <c>http</c> to another machine only for a credential added with <c>--allow-insecure-http</c>
/// (recorded as <c>CredentialMetadata.AllowInsecureHttp</c>), and never for an authorization server.
/// </summary>
/// <remarks>
/// Checked when a URL is added (<see cref="TryParse(string?, bool, out Uri, out string)"/>) and again on every
/// request as it leaves (<see cref="UrlPolicyHandler"/>), so a URL that changed in the store since it was added is
/// refused before anything is sent.
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
        _ => $"'{url}' is not allowed.",
    };

    /// <summary>Whether the URL's host is this machine: <c>localhost</c>, 127.0.0.0/8 or <c>::1</c>.</summary>
    public static bool IsLoopback(Uri uri) =>
        string.Equals(uri.IdnHost, "localhost", StringComparison.OrdinalIgnoreCase)
        || uri.IdnHost.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));

    /// <summary>Whether a URL is plain http to another machine: the case <c>--allow-insecure-http</c> is for.</summary>
    public static bool NeedsInsecureOptIn(Uri uri) => uri.Scheme == Uri.UriSchemeHttp && !IsLoopback(uri);

    private static string SchemeOf(string? url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var parsed) ? parsed.Scheme : url?.Split(':')[0] ?? string.Empty;
}
