using System.Collections.Frozen;

namespace Latchkey.Gateway;

/// <summary>
/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and so are never forwarded in either
/// direction; plus the few that belong to this hop's framing and that Kestrel or <c>SocketsHttpHandler</c> set
/// themselves.
/// </summary>
internal static class HopByHopHeaders
{
    public static FrozenSet<string> All { get; } = new[]
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authentication-Info",
        "Proxy-Authorization", "Proxy-Features", "Proxy-Instruction", "TE", "Trailer", "Transfer-Encoding",
        "Upgrade", "HTTP2-Settings", "Alt-Svc", "Close", "ALPN",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
}
