using System.Text.Json;

namespace Latchkey.OAuth;

/// <summary>
/// Reads the claims of a JWT access token without checking its signature (that is the resource server's
/// business): for scheduling a refresh and diagnosing a refusal only, never to decide what a token may do.
/// </summary>
internal static class JwtPayload
{
    /// <summary>
    /// The payload of <paramref name="token"/> as JSON, or <see langword="null"/> for a token that is not a JWT:
    /// not three dot-separated parts, or a middle part that is not base64url-encoded JSON. The caller disposes it.
    /// </summary>
    public static JsonDocument? TryParse(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            return null;
        }

        try
        {
            var payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
            return JsonDocument.Parse(Convert.FromBase64String(payload));
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return null;
        }
    }
}
