namespace Latchkey.Mcp;

/// <summary>
/// The legacy HTTP+SSE transport's <c>endpoint</c> event, checked: the URL where a client POSTs its messages, which
/// carry the server's token. The stream itself is read like every event stream Latchkey reads
/// (<see cref="Http.SseReader"/>: the BCL's parser, each event bounded).
/// </summary>
internal static class McpSse
{
    /// <summary>
    /// Resolves the legacy transport's <c>endpoint</c> event against the server's URL. The result must be on the
    /// server's own origin (scheme, host and port), since the POSTs sent there carry the server's token.
    /// </summary>
    /// <returns>The endpoint, or null with <paramref name="problem"/> saying why it was refused.</returns>
    public static Uri? ResolveEndpoint(Uri server, string data, out string problem)
    {
        ArgumentNullException.ThrowIfNull(server);
        // The event's value as the SSE reader gives it; white space around a URL is not part of it (Uri reads it so
        // too), and an empty one names nothing (rather than the server's own URL).
        var text = (data ?? string.Empty).Trim();
        var shown = text.Length <= 200 ? text : text[..200] + "…";
        if (text.Length == 0 || !Uri.TryCreate(server, text, out var endpoint) || !endpoint.IsAbsoluteUri)
        {
            problem = $"its 'endpoint' event named '{shown}', which is not a URL";
            return null;
        }

        var origin = server.GetLeftPart(UriPartial.Authority);
        if (!string.Equals(endpoint.GetLeftPart(UriPartial.Authority), origin, StringComparison.OrdinalIgnoreCase) || !string.IsNullOrEmpty(endpoint.UserInfo))
        {
            problem = $"its 'endpoint' event named a URL on another origin ({(endpoint.IsAbsoluteUri ? endpoint.GetLeftPart(UriPartial.Authority) : shown)}, not {origin}); the server's token is only ever sent to the server's own origin";
            return null;
        }

        problem = string.Empty;
        return endpoint;
    }
}
