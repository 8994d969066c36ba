using System.Text.Json;

namespace Latchkey.Diagnostics;

/// <summary>
/// Puts Latchkey's explanation of an upstream's refusal where agents show it: an upstream error body in the Anthropic
/// shape (<c>{"type":"error","error":{"type":...,"message":...},"request_id":...}</c>) or the OpenAI shape
/// (<c>{"error":{"message":...,"type":...,"param":...,"code":...}}</c>) is written again in the same shape, with
/// <c>error.message</c> saying what Latchkey found and the command that fixes it, the upstream's error type, code and
/// request id kept, and a <c>latchkey</c> object (reason, message, fix, credential) as in the gateway's own refusals.
/// The status and headers are the caller's to keep.
/// </summary>
/// <remarks>
/// <para><b>When.</b> Only for a failure about the credential (<see cref="UpstreamDiagnosis.IsCredentialFailure"/>):
/// a rate limit or an outage keeps the upstream's own words, which agents already act on. Only for a whole body of at
/// most <see cref="MaxBodyBytes"/> that parses as one of the two shapes (an object whose <c>error</c> is an object with
/// string <c>type</c> and <c>message</c>, and no <c>jsonrpc</c>); anything else (cut short, compressed, another
/// shape, an MCP server's JSON-RPC error) is left as it came.</para>
/// <para><b>Secrets.</b> Nothing of the upstream's body is copied but its error type and code (identifiers, cut to
/// <see cref="ServerText.MaxCodeLength"/> and quoted by <see cref="ServerText"/>) and the request id the diagnosis
/// already holds (masked). The upstream's own message is not repeated: it is in the <c>latchkey-diagnostic</c> header
/// and in <c>latchkey status</c>. That also keeps the body free of the words that make Claude Code replace any error
/// with its own sign-in advice (it does so for any error body mentioning its API-key header).</para>
/// </remarks>
internal static class AgentErrorBody
{
    /// <summary>The largest upstream error body rewritten (real ones are well under 1 KiB).</summary>
    public const int MaxBodyBytes = 16 * 1024;

    /// <summary>
    /// The body to send the agent instead of <paramref name="body"/>, or null to send the upstream's unchanged.
    /// </summary>
    /// <param name="body">The upstream's whole error body (the caller read it to the end, or to more than <see cref="MaxBodyBytes"/>).</param>
    /// <param name="diagnosis">What the gateway found; its message and fix are Latchkey's own, secrets already masked.</param>
    /// <param name="credential">The credential's name, for the <c>latchkey</c> object.</param>
    public static byte[]? Rewrite(ReadOnlySpan<byte> body, UpstreamDiagnosis diagnosis, string credential)
    {
        ArgumentNullException.ThrowIfNull(diagnosis);
        if (!diagnosis.IsCredentialFailure || body.IsEmpty || body.Length > MaxBodyBytes || Parse(body) is not { } upstream)
        {
            return null;
        }

        var explanation = diagnosis.Explanation;
        var message = diagnosis.Fix is null ? explanation : $"{explanation} {diagnosis.Fix}";
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (upstream.Anthropic)
            {
                json.WriteString("type", "error");
            }

            json.WriteStartObject("error");
            if (upstream.Anthropic)
            {
                json.WriteString("type", upstream.Type);
                json.WriteString("message", message);
            }
            else
            {
                json.WriteString("message", message);
                json.WriteString("type", upstream.Type);
                json.WriteNull("param");
                if (upstream.Code is null)
                {
                    json.WriteNull("code");
                }
                else
                {
                    json.WriteString("code", upstream.Code);
                }
            }

            json.WriteEndObject();
            if (upstream.Anthropic)
            {
                json.WriteString("request_id", diagnosis.RequestId);
            }

            json.WriteStartObject("latchkey");
            json.WriteString("reason", diagnosis.Code);
            json.WriteString("message", explanation);
            if (diagnosis.Fix is not null)
            {
                json.WriteString("fix", diagnosis.Fix);
            }

            json.WriteString("credential", credential);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>The shape and identifiers of an upstream error body; null when it is not one of the two shapes.</summary>
    private static Shape? Parse(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 16 });
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || root.TryGetProperty("jsonrpc", out _)
                || !root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object
                || !error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String
                || Identifier(error, "type") is not { } type)
            {
                return null;
            }

            var anthropic = root.TryGetProperty("type", out var kind) && kind.ValueKind == JsonValueKind.String && kind.ValueEquals("error"u8);
            return new Shape(anthropic, type, anthropic ? null : Identifier(error, "code"));
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A short identifier-like string property (<c>authentication_error</c>, <c>invalid_api_key</c>), quoted.</summary>
    private static string? Identifier(JsonElement element, string property)
    {
        if (!element.TryGetProperty(property, out var value) || value.ValueKind != JsonValueKind.String)
        {
            return null;
        }

        try
        {
            var text = value.GetString()!;
            return ServerText.Quote(text, [], ServerText.MaxCodeLength);
        }
        catch (InvalidOperationException)
        {
            return null; // a lone surrogate escape
        }
    }

    private sealed record Shape(bool Anthropic, string Type, string? Code);
}
