using System.Text.Json;
using Latchkey.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// The answers the gateway writes itself. They use the Anthropic error shape, which both Anthropic and OpenAI
/// clients show as a message, plus a <c>latchkey</c> object with the reason code and the next step, and the same
/// in the <c>latchkey-diagnostic</c> header.
/// </summary>
internal static class GatewayErrors
{
    public const string DiagnosticHeader = "latchkey-diagnostic";

    /// <summary>
    /// Writes the gateway's own error answer. <paramref name="parameters"/> qualify the reason (they follow it in the
    /// <c>latchkey-diagnostic</c> header and appear in the body's <c>latchkey</c> object); <paramref name="retryAfter"/>
    /// is written as <c>retry-after</c> (whole seconds) in the header and the diagnostic.
    /// </summary>
    public static Task WriteAsync(HttpContext context, int status, string reason, string message, string? fix, string? credential = null,
        IReadOnlyList<(string Name, string Value)>? parameters = null, TimeSpan? retryAfter = null)
    {
        if (AuditFacts.Of(context) is { } audit)
        {
            audit.Reason = reason;
            audit.Credential = credential ?? audit.Credential;
        }

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        var diagnosis = new UpstreamDiagnosis(reason, message, fix, status, null, retryAfter);
        response.Headers[DiagnosticHeader] = diagnosis.ToHeaderValue(credential ?? string.Empty, parameters);
        if (retryAfter is { } wait)
        {
            response.Headers.RetryAfter = Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var type = status switch
        {
            400 or 405 or 413 or 431 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "error");
            json.WriteStartObject("error");
            json.WriteString("type", type);
            json.WriteString("message", fix is null ? message : $"{message} {fix}");
            json.WriteEndObject();
            json.WriteStartObject("latchkey");
            json.WriteString("reason", reason);
            foreach (var (name, value) in parameters ?? [])
            {
                json.WriteString(name, value);
            }

            json.WriteString("message", message);
            if (fix is not null)
            {
                json.WriteString("fix", fix);
            }

            if (credential is not null)
            {
                json.WriteString("credential", credential);
            }

            json.WriteEndObject();
            json.WriteEndObject();
        }

        response.ContentLength = buffer.Length;
        return response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), context.RequestAborted).AsTask();
    }
}
