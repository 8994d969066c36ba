using System.Net;

namespace Latchkey.Http;

/// <summary>
/// Which URLs Latchkey will send a credential to: <c>https</c> only, except loopback hosts (<c>localhost</c>,
/// 127.0.0.0/8, <c>::1</c>) where <c>http</c> is allowed, because nothing leaves the machine. No user info, no
/// fragment.
/// </summary>
internal static class UrlPolicy
{
    /// <summary>Parses and checks a URL a credential may be sent to; returns a sentence naming the problem.</summary>
    public static bool TryParse(string? text, out Uri uri, out string problem)
    {
        uri = null!;
        // On Unix, Uri reads "/path" as an absolute file URI; that is a relative reference here.
        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(text, UriKind.Absolute, out var parsed)
            || (parsed.IsFile && !text.StartsWith("file:", StringComparison.OrdinalIgnoreCase)))
        {
            problem = $"'{text}' is not an absolute URL; give one like https://api.example.com.";
            return false;
        }

        if (parsed.Scheme != Uri.UriSchemeHttps && parsed.Scheme != Uri.UriSchemeHttp)
        {
            problem = $"'{text}' uses the scheme '{parsed.Scheme}'; only https (and http to this machine) is allowed.";
            return false;
        }

        if (parsed.Scheme == Uri.UriSchemeHttp && !IsLoopback(parsed))
        {
            problem = $"'{text}' is plain http to another machine, which would send the credential in clear; use https.";
            return false;
        }

        if (!string.IsNullOrEmpty(parsed.UserInfo))
        {
            problem = "The URL must not carry a user name or password; Latchkey injects the credential itself.";
            return false;
        }

        if (!string.IsNullOrEmpty(parsed.Fragment))
        {
            problem = $"'{text}' has a fragment (#…), which a server never sees; remove it.";
            return false;
        }

        uri = parsed;
        problem = string.Empty;
        return true;
    }

    /// <summary>Whether the URL's host is this machine: <c>localhost</c>, 127.0.0.0/8 or <c>::1</c>.</summary>
    public static bool IsLoopback(Uri uri) =>
        string.Equals(uri.IdnHost, "localhost", StringComparison.OrdinalIgnoreCase)
        || uri.IdnHost.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));
}
