namespace Latchkey.Mcp;

/// <summary>The MCP transports Latchkey speaks upstream, as stored in <c>CredentialMetadata.McpTransport</c>.</summary>
internal static class McpTransports
{
    /// <summary>Streamable HTTP (MCP 2025-03-26 and later): POST (JSON or SSE answer), GET stream, DELETE session.</summary>
    public const string StreamableHttp = "streamable-http";

    /// <summary>The legacy HTTP+SSE transport (2024-11-05): GET opens an event stream whose <c>endpoint</c> event names the POST URL.</summary>
    public const string Sse = "sse";

    /// <summary>The headers an MCP client and server exchange that must pass through unchanged.</summary>
    public const string SessionHeader = "Mcp-Session-Id";

    public const string ProtocolVersionHeader = "MCP-Protocol-Version";
}
