using System.CommandLine;
using Latchkey.Http;

namespace Latchkey.Cli;

/// <summary>
/// <c>--allow-insecure-http</c> on <c>latchkey add</c>, <c>mcp add</c> and <c>login</c>: the explicit opt-in to send a
/// credential over plain http to another machine, recorded with the credential
/// (<see cref="Store.CredentialMetadata.AllowInsecureHttp"/>) and honoured on every request as it leaves.
/// </summary>
internal static class InsecureHttpOption
{
    public const string Name = "--allow-insecure-http";

    public static Option<bool> Create() => new(Name)
    {
        Description = "Allow plain http to another machine for this URL, recorded with the credential. The credential then crosses the network in clear: only for a network you trust (a LAN service without TLS).",
    };

    /// <summary>Checks a URL the credential will be sent to, with or without the opt-in; throws a usage error naming the fix.</summary>
    /// <param name="option">The option the URL came from, for the message (e.g. <c>--upstream</c>).</param>
    /// <param name="text">The URL as given.</param>
    /// <param name="allowInsecureHttp">Whether <c>--allow-insecure-http</c> was given.</param>
    public static Uri Parse(string option, string? text, bool allowInsecureHttp)
    {
        if (UrlPolicy.TryParse(text, allowInsecureHttp, out var uri, out var problem))
        {
            return uri;
        }

        var plainHttp = UrlPolicy.TryParse(text, allowInsecureHttp: true, out _, out _);
        throw new CliException(ExitCodes.Usage, $"{option}: {problem}",
            plainHttp ? $"If plain http to that machine is intended (a network you trust), add {Name}; the credential then crosses the network in clear." : null);
    }

    /// <summary>Refuses the opt-in when none of the URLs it would cover needs it (https, or this machine).</summary>
    public static void RequireNeeded(bool allowInsecureHttp, params Uri?[] urls)
    {
        if (allowInsecureHttp && !urls.Any(u => u is not null && UrlPolicy.NeedsInsecureOptIn(u)))
        {
            throw new CliException(ExitCodes.Usage, $"{Name} is only for a plain http URL to another machine, and none was given.",
                $"Drop {Name}: https URLs and http to this machine need no opt-in.");
        }
    }
}
