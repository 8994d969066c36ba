namespace Latchkey.Local;

/// <summary>
/// A gateway forwarded to this machine by <c>latchkey ssh</c> on another one: the session's environment carries
/// its address and a session key, so <c>latchkey run</c> here uses it instead of starting a gateway of its own
/// (there are no credentials on this machine to serve).
/// </summary>
/// <param name="Url">The forwarded gateway's loopback URL (<c>LATCHKEY_URL</c>).</param>
/// <param name="Key">The session key (<c>LATCHKEY_KEY</c>). Secret: never printed.</param>
/// <param name="Credential">The credential or router the session points agents at (<c>LATCHKEY_CREDENTIAL</c>), if known.</param>
/// <param name="Api">The API shape of that credential (<c>LATCHKEY_API</c>), if known.</param>
internal sealed record ForwardedGateway(string Url, string Key, string? Credential, string? Api)
{
    public const string UrlVariable = "LATCHKEY_URL";
    public const string KeyVariable = "LATCHKEY_KEY";
    public const string CredentialVariable = "LATCHKEY_CREDENTIAL";
    public const string ApiVariable = "LATCHKEY_API";

    /// <summary>The remote end of the Unix-socket forward, for clients that can speak HTTP over a socket.</summary>
    public const string SocketVariable = "LATCHKEY_SOCKET";

    /// <summary>
    /// The forwarded gateway described by this process's environment, or null when there is none: both
    /// <c>LATCHKEY_URL</c> (a loopback http URL) and <c>LATCHKEY_KEY</c> must be set.
    /// </summary>
    public static ForwardedGateway? FromEnvironment()
    {
        var url = Environment.GetEnvironmentVariable(UrlVariable);
        var key = Environment.GetEnvironmentVariable(KeyVariable);
        if (string.IsNullOrEmpty(url) || string.IsNullOrEmpty(key)
            || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp || !uri.IsLoopback)
        {
            return null;
        }

        return new ForwardedGateway(url.TrimEnd('/'), key, Blank(Environment.GetEnvironmentVariable(CredentialVariable)), Blank(Environment.GetEnvironmentVariable(ApiVariable)));
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
