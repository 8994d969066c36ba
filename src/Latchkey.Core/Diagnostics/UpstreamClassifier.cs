using System.Globalization;
using System.Text.Json;
using Latchkey.Store;

namespace Latchkey.Diagnostics;

/// <summary>
/// Turns an upstream's failure response into an <see cref="UpstreamDiagnosis"/>. Knows the error shapes of
/// Anthropic (<c>{"type":"error","error":{"type":...,"message":...}}</c>, <c>request-id</c>) and OpenAI
/// (<c>{"error":{"message":...,"type":...,"code":...}}</c>, <c>x-request-id</c>); anything else is classified by
/// status alone.
/// </summary>
/// <remarks>
/// Providers restrict some credentials to their own first-party clients. Latchkey does not work around that: a
/// restricted credential is reported as <c>credential_restricted</c>, with the sanctioned path (an API key).
/// </remarks>
internal static class UpstreamClassifier
{
    /// <summary>The most of an error body the gateway reads to classify it.</summary>
    public const int MaxBodyBytes = 64 * 1024;

    /// <summary>Whether a response with this status is worth reading the body of (it may be a failure to explain).</summary>
    public static bool IsFailure(int status) => status is 400 or 401 or 403 or 429 or >= 500;

    /// <summary>
    /// Classifies a failure response; null when the status is not a failure the gateway explains (e.g. a 400
    /// about the request itself, which is the agent's business).
    /// </summary>
    /// <param name="status">The upstream's status code.</param>
    /// <param name="body">Up to <see cref="MaxBodyBytes"/> of the body, or empty.</param>
    /// <param name="requestId">The upstream's request id header, if any.</param>
    /// <param name="retryAfter">The upstream's <c>retry-after</c> header value, if any.</param>
    /// <param name="credential">The credential that was used; all its secrets are masked out of what is quoted.</param>
    /// <param name="secret">The secret that was injected, masked out of what is quoted (the message and request id).</param>
    public static UpstreamDiagnosis? Classify(int status, ReadOnlySpan<byte> body, string? requestId, string? retryAfter, CredentialRecord credential, string? secret)
    {
        ArgumentNullException.ThrowIfNull(credential);
        var (type, code, raw, bodyRequestId) = ParseError(body);
        string?[] secrets = [secret, .. ServerText.SecretsOf(credential.Secrets)];
        requestId = (requestId ?? bodyRequestId) is { } id ? ServerText.Quote(id, secrets, ServerText.MaxRequestIdLength) : null;
        var message = raw is null ? null : ServerText.Sanitize(raw, secrets);
        var quoted = message is null ? null : ServerText.Quote(message, []);
        var name = credential.Name;
        var oauth = credential.Kind == CredentialKind.OAuth;
        var said = quoted is null ? string.Empty : $"{UpstreamDiagnosis.UpstreamSaid}\"{quoted}\"";

        if (message is not null && message.Contains("only authorized for use with", StringComparison.OrdinalIgnoreCase))
        {
            return new("credential_restricted",
                $"The provider restricts '{name}' to its own first-party client, so it cannot be used through Latchkey for other requests.{said}",
                $"Latchkey does not present credentials as another vendor's client. {ApiKeyFix(name, credential.Metadata.Upstream)}",
                status, requestId, null);
        }

        if (message is not null && message.Contains("OAuth authentication is currently not supported", StringComparison.OrdinalIgnoreCase))
        {
            return new("oauth_not_supported",
                $"This upstream does not accept OAuth access tokens, and '{name}' is one.{said}",
                ApiKeyFix(name, credential.Metadata.Upstream),
                status, requestId, null);
        }

        if (message is not null && TryGetRequiredScope(message) is { } scope)
        {
            return new("missing_scope",
                $"The access token of '{name}' lacks the scope '{scope}' this request needs.{said}",
                $"Sign in again with that scope added: latchkey login {name} --scope '{string.Join(' ', credential.Metadata.ScopesRequested.Append(scope).Distinct(StringComparer.Ordinal))}'",
                status, requestId, null);
        }

        if (code == "invalid_api_key" && !oauth)
        {
            return new("invalid_api_key", $"The upstream does not accept the API key stored as '{name}'.{said}", StoreKeyFix(name), status, requestId, null);
        }

        switch (status)
        {
            case 401:
                return new("authentication_failed",
                    oauth ? $"The upstream refused the access token of '{name}', even after a refresh.{said}" : $"The upstream refused the key stored as '{name}'.{said}",
                    oauth ? $"Sign in again: latchkey login {name}" : StoreKeyFix(name),
                    status, requestId, null);
            case 403:
                return new("permission_denied",
                    $"The upstream accepted '{name}' but does not allow it to do this (organisation, workspace, model or scope access).{said}",
                    "Check the credential's permissions with the provider, or use a credential that has them.", status, requestId, null);
            case 429:
                var wait = ParseRetryAfter(retryAfter);
                return new("rate_limited", $"The upstream is rate-limiting '{name}'.{said}",
                    wait is { } w ? $"Retry after {Math.Ceiling(w.TotalSeconds).ToString(CultureInfo.InvariantCulture)} s, or add a fallback route (docs/gateway.md)." : "Retry later, or add a fallback route (docs/gateway.md).",
                    status, requestId, wait);
            case 529:
                return new("overloaded", $"The upstream is overloaded.{said}", "Retry later, or add a fallback route (docs/gateway.md).", status, requestId, ParseRetryAfter(retryAfter));
            case >= 500:
                return new("upstream_error", $"The upstream failed with {status}.{said}", "Retry later, or add a fallback route (docs/gateway.md).", status, requestId, ParseRetryAfter(retryAfter));
            default:
                return type is "authentication_error" or "permission_error"
                    ? new(type == "authentication_error" ? "authentication_failed" : "permission_denied", $"The upstream refused '{name}'.{said}", null, status, requestId, null)
                    : null;
        }
    }

    /// <summary>
    /// The fix for an API key the upstream refuses: store a valid one in its place, keeping how it is sent. Plain
    /// <c>--replace</c> would set the upstream, header, format and extra headers again from its own options, whose
    /// defaults (<c>Authorization: Bearer</c>, no extra headers) break a key sent any other way (Anthropic's, for one);
    /// <c>--keep-settings</c> replaces the secret alone. The header is not named (see <see cref="ApiKeyFix"/>).
    /// </summary>
    public static string StoreKeyFix(string name) => $"Store a valid key: latchkey add {name} --replace --keep-settings < key.txt";

    /// <summary>
    /// The fix for a credential the upstream takes only as an API key. It names the header as HEADER, not the
    /// provider's: Claude Code shows its own sign-in advice instead of any error whose body names its API-key header.
    /// </summary>
    private static string ApiKeyFix(string name, string? upstream) =>
        $"Use an API key for this upstream, in the header its API keys go in: latchkey add {name}-api --upstream {upstream} --header HEADER --format '{{secret}}' < key.txt";

    /// <summary>The seconds of a <c>retry-after</c> header (delta-seconds only; dates are treated as absent).</summary>
    public static TimeSpan? ParseRetryAfter(string? value) =>
        value is not null && double.TryParse(value.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds is >= 0 and < 86400
            ? TimeSpan.FromSeconds(seconds)
            : null;

    private static string? TryGetRequiredScope(string message)
    {
        const string marker = "does not meet scope requirement";
        var at = message.IndexOf(marker, StringComparison.OrdinalIgnoreCase);
        if (at < 0)
        {
            return null;
        }

        var rest = message.AsSpan(at + marker.Length).Trim();
        var end = rest.IndexOfAny(' ', '"', '\'');
        var scope = (end < 0 ? rest : rest[..end]).ToString().TrimEnd('.', ',', ';');
        return scope.Length is > 0 and <= 100 ? scope : null;
    }

    private static (string? Type, string? Code, string? Message, string? RequestId) ParseError(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return default;
        }

        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 16 });
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return default;
            }

            var requestId = Text(root, "request_id");
            if (!root.TryGetProperty("error", out var error))
            {
                return (null, null, Text(root, "message"), requestId);
            }

            if (error.ValueKind == JsonValueKind.String)
            {
                return (null, null, Text(error), requestId);
            }

            return error.ValueKind == JsonValueKind.Object
                ? (Text(error, "type"), Text(error, "code"), Text(error, "message"), requestId)
                : (null, null, null, requestId);
        }
        catch (JsonException)
        {
            return default;
        }
    }

    private static string? Text(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) ? Text(value) : null;

    /// <summary>A string value, or null when it is not a string or does not decode (a lone surrogate escape).</summary>
    private static string? Text(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            return null;
        }

        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
