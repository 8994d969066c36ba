using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Latchkey.Http;

namespace Latchkey.OAuth;

/// <summary>
/// HTTP for OAuth calls (metadata, registration, token, revocation, device authorization), with the limits that
/// keep a lying or hostile server from steering or exhausting the client: https only (http for loopback), no automatic redirects, no cookies, bodies at most
/// 64 KiB, connect timeout 10 s, whole request 30 s, JSON depth at most 32. Every failure is an
/// <see cref="OAuthException"/> with its own reason code.
/// </summary>
/// <remarks>The URL is checked as the request leaves, by <see cref="UrlPolicyHandler"/> around the given handler:
/// https, or http to this machine; http to another machine only for a request to a resource the user opted in for
/// (<see cref="UrlPolicyHandler.PermitInsecureHttp"/>), never for the authorization server's endpoints.</remarks>
/// <remarks>Thread-safe; one instance per process is enough: the composition root builds it on the
/// <see cref="HttpPurpose.OAuth"/> handler (no redirects, no cookies, connect timeout 10 s).</remarks>
internal sealed class OAuthHttp(HttpMessageHandler handler) : IDisposable
{
    public const int MaxBodyBytes = 64 * 1024;
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    private static readonly JsonDocumentOptions JsonOptions = new() { MaxDepth = 32 };

    private readonly HttpClient _client = new(new UrlPolicyHandler(handler), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>Sends a request and reads at most <see cref="MaxBodyBytes"/> of its body.</summary>
    /// <exception cref="OAuthException">The URL is not allowed, the body is too large, or the server timed out.</exception>
    /// <exception cref="HttpRequestException">The network failed; <see cref="HttpRequestException.HttpRequestError"/> says how.</exception>
    public async Task<OAuthResponse> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.RequestUri is not { IsAbsoluteUri: true })
        {
            throw new OAuthException("url_refused", UrlPolicy.Describe(UrlVerdict.NotAbsolute, request.RequestUri?.OriginalString));
        }

        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        try
        {
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            var body = await ReadLimitedAsync(response, request.RequestUri!, timeout.Token).ConfigureAwait(false);
            return new OAuthResponse(response.StatusCode, body, response.Headers, response.Content.Headers.ContentType?.MediaType);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new OAuthException("timeout", $"{request.RequestUri} did not answer within {RequestTimeout.TotalSeconds:0} s.");
        }
        catch (UrlRefusedException ex)
        {
            throw new OAuthException("url_refused", ex.Problem, ex);
        }
    }

    /// <summary>GETs a JSON document (metadata), refusing redirects, non-JSON and oversized bodies. With
    /// <paramref name="allowInsecureHttp"/> (a resource the user opted in for), plain http to another machine is allowed.</summary>
    public async Task<(HttpStatusCode Status, JsonElement? Json)> GetJsonAsync(Uri url, CancellationToken cancellationToken, bool allowInsecureHttp = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        UrlPolicyHandler.PermitInsecureHttp(request, allowInsecureHttp);
        var response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccess)
        {
            return (response.Status, null);
        }

        return (response.Status, response.ParseJson(url));
    }

    public void Dispose() => _client.Dispose();

    private static async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, Uri url, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > MaxBodyBytes)
        {
            throw new OAuthException("too_large", $"{url} answered with {response.Content.Headers.ContentLength} bytes; at most {MaxBodyBytes} are accepted.");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[MaxBodyBytes + 1];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
        {
            total += read;
        }

        if (total > MaxBodyBytes)
        {
            throw new OAuthException("too_large", $"{url} answered with more than {MaxBodyBytes} bytes; at most {MaxBodyBytes} are accepted.");
        }

        return buffer[..total];
    }

    /// <summary>A response whose body was read within the limits.</summary>
    internal sealed record OAuthResponse(HttpStatusCode Status, byte[] Body, HttpResponseHeaders Headers, string? MediaType)
    {
        public bool IsSuccess => (int)Status is >= 200 and < 300;

        /// <summary>Parses the body as one JSON object.</summary>
        /// <exception cref="OAuthException"><c>invalid_json</c> when it is not.</exception>
        public JsonElement ParseJson(Uri url)
        {
            try
            {
                using var document = JsonDocument.Parse(Body, JsonOptions);
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new OAuthException("invalid_json", $"{url} did not answer with a JSON object.");
                }

                return document.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                throw new OAuthException("invalid_json", $"{url} did not answer with valid JSON ({ex.Message}).", ex);
            }
        }

        /// <summary>The body as a JSON object, or <see langword="null"/> when it is not one.</summary>
        public JsonElement? TryParseJson()
        {
            try
            {
                using var document = JsonDocument.Parse(Body, JsonOptions);
                return document.RootElement.ValueKind == JsonValueKind.Object ? document.RootElement.Clone() : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }

        public string? RequestId =>
            Headers.TryGetValues("request-id", out var a) ? a.FirstOrDefault()
            : Headers.TryGetValues("x-request-id", out var b) ? b.FirstOrDefault() : null;
    }
}
