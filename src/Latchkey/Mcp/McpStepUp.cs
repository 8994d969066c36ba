using System.Text.Json;
using System.Text.Json.Nodes;
using Latchkey.OAuth;
using Latchkey.Store;

namespace Latchkey.Mcp;

/// <summary>
/// A 403 <c>insufficient_scope</c> from an MCP server (a step-up request in MCP authorization): the proxy and the
/// bridge never open a browser. They record the scopes needed on the server's record — the union of those held and
/// those the challenge names becomes <c>scopes.requested</c>, so a plain <c>latchkey login NAME</c> asks for exactly
/// that — keep the reason in <c>last_upstream_failure</c> (code <see cref="Code"/>), and answer the MCP client with a
/// JSON-RPC error naming the missing scopes and the command. Neither retries: the operation needs a person.
/// </summary>
internal static class McpStepUp
{
    public const string Code = "insufficient_scope";

    /// <summary>JSON-RPC error code Latchkey uses for "sign in with more scope" (implementation-defined server error range).</summary>
    public const int JsonRpcCode = -32003;

    /// <summary>The scopes a 403 asks for, or null when it is not an <c>insufficient_scope</c> step-up (a plain 403).</summary>
    public static IReadOnlyList<string>? Needed(HttpResponseMessage response)
    {
        if (response.StatusCode != System.Net.HttpStatusCode.Forbidden || !response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values))
        {
            return null;
        }

        var challenge = WwwAuthenticateParser.Parse(values);
        return challenge.Error == Code ? challenge.Scopes : null;
    }

    /// <summary>Records the step-up on the record and returns the sentence for the MCP client (no secret in it).</summary>
    public static async Task<string> RecordAsync(ICredentialStore store, CredentialRecord record, IReadOnlyList<string> challengeScopes, TimeProvider time, CancellationToken ct)
    {
        var m = record.Metadata;
        var wanted = challengeScopes.Count > 0 ? challengeScopes : m.ScopesRequested;
        var missing = wanted.Where(s => !m.ScopesGranted.Contains(s, StringComparer.Ordinal)).ToList();
        var union = m.ScopesRequested.Concat(m.ScopesGranted).Concat(wanted).Where(s => s != "offline_access").Distinct(StringComparer.Ordinal).ToList();
        var named = missing.Count > 0 ? string.Join(' ', missing) : string.Join(' ', wanted);
        var message = $"The MCP server '{record.Name}' needs the scope(s) {named} for this request, which the stored grant does not have. Run: latchkey login {record.Name}  (it asks for {string.Join(' ', union)})";
        await store.UpdateAsync(record.Name, new CredentialPatch { Metadata = m => m with { ScopesRequested = union } }, WriteCondition.None, CancellationToken.None).ConfigureAwait(false);
        await store.RecordUpstreamFailureAsync(record.Name, new UpstreamFailure(Code, message, $"latchkey login {record.Name}", 403, null, time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
        _ = ct;
        return message;
    }

    /// <summary>A JSON-RPC error response to the request in <paramref name="body"/> (its id), or null for a notification or a batch.</summary>
    public static byte[]? ErrorResponse(ReadOnlySpan<byte> body, string message, int code = JsonRpcCode)
    {
        JsonNode? id;
        try
        {
            if (JsonNode.Parse(body) is not JsonObject request || !request.TryGetPropertyValue("id", out id))
            {
                return null;
            }
        }
        catch (JsonException)
        {
            return null;
        }

        var error = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = id?.DeepClone(),
            ["error"] = new JsonObject { ["code"] = code, ["message"] = message },
        };
        return JsonSerializer.SerializeToUtf8Bytes(error, McpJsonContext.Default.JsonObject);
    }

    /// <summary>Whether a JWT access token's audience leaves out <paramref name="resource"/> (false for opaque tokens).</summary>
    public static bool WrongAudience(string accessToken, string? resource)
    {
        if (resource is null)
        {
            return false;
        }

        using var json = JwtPayload.TryParse(accessToken);
        if (json is null || !json.RootElement.TryGetProperty("aud", out var aud))
        {
            return false;
        }

        return aud.ValueKind switch
        {
            JsonValueKind.String => aud.GetString() != resource,
            JsonValueKind.Array => !aud.EnumerateArray().Any(a => a.GetString() == resource),
            _ => false,
        };
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(JsonObject))]
internal sealed partial class McpJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
