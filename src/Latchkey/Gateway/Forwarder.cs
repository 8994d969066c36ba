using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Latchkey.Gateway;

/// <summary>
/// Sends an agent's request to an upstream and streams the answer back, in two steps so a caller can look at the
/// status before committing to it (retry after a refresh, fall back to another upstream):
/// <list type="number">
/// <item><see cref="SendAsync"/>: copies the request line, end-to-end headers and body (streamed, or from a kept
/// buffer) and waits for the response headers, no longer than the timeout.</item>
/// <item><see cref="CopyResponseAsync"/>: writes the status and end-to-end headers, then the body, flushing after
/// every read so Server-Sent Events reach the agent one by one, then the upstream's trailers where the agent's
/// protocol carries them (Kestrel sends them over HTTP/2 and later, not over HTTP/1.1).</item>
/// </list>
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> One instance serves every request; it holds only the shared invoker. The response
/// headers are waited for no longer than <see cref="GatewayOptions.UpstreamTimeout"/>.</para>
/// <para><b>Bodies.</b> A body copy, either way, is cut when neither side moves a byte for
/// <see cref="GatewayOptions.IdleTimeout"/> (<see cref="ActivityTimeout"/>, on the injected clock); a slow stream
/// that keeps moving is never cut. Every failure names the side at fault (<see cref="ForwarderError"/>): the agent's
/// body broke off, the upstream stopped reading it, the upstream's answer broke off, the agent stopped taking it,
/// either went idle, or the agent went away. A response that fails after it started is aborted, so the agent sees
/// a truncated answer and never a complete-looking one. HTTP request trailers are not sent on:
/// <see cref="HttpClient"/> has no way to send them.</para>
/// <para><b>Security.</b> Headers named in <c>skipRequestHeaders</c> (the agent's client key) are never copied;
/// the caller adds the real credential through the <c>inject</c> callback. No redirect is followed, no cookie
/// kept, nothing decompressed (the <see cref="Http.HttpPurpose.Forwarding"/> handler). The invoker, the composition
/// root's <see cref="Composition.LatchkeyServices.ForwardingInvoker"/>, checks every request's URL as it leaves
/// (<see cref="Http.UrlPolicyHandler"/>; the <c>inject</c> callback passes the credential's opt-in); a refused one is
/// <see cref="ForwarderError.UrlRefused"/> and nothing was sent. An upstream's <c>latchkey-*</c> response headers
/// are dropped: only Latchkey adds those.</para>
/// </remarks>
internal sealed class Forwarder(HttpMessageInvoker invoker, GatewayOptions options, TimeProvider time)
{
    private const int BufferSize = 64 * 1024;

    /// <summary>The prefix of Latchkey's own response headers (<c>latchkey-diagnostic</c>, <c>latchkey-credential</c>, ...).</summary>
    private const string LatchkeyHeaderPrefix = "latchkey-";

    /// <summary>Step 1: sends the request and waits for the upstream's response headers.</summary>
    /// <param name="context">The agent's request.</param>
    /// <param name="target">The upstream URL (base, path and query already combined).</param>
    /// <param name="body">The request body, streamed or kept.</param>
    /// <param name="skipRequestHeaders">Request headers never to copy (the client key's headers).</param>
    /// <param name="inject">Adds the real credential and configured headers to the outgoing request.</param>
    /// <returns>The response (headers read, body not), or the error and its exception; a streamed body that failed
    /// is <see cref="ForwarderError.RequestBodyAgent"/>, <see cref="ForwarderError.RequestBodyUpstream"/>,
    /// <see cref="ForwarderError.AgentIdle"/> or <see cref="ForwarderError.UpstreamIdle"/>.</returns>
    public async Task<(HttpResponseMessage? Response, ForwarderError Error, Exception? Exception)> SendAsync(
        HttpContext context, Uri target, RequestBody body, IReadOnlySet<string> skipRequestHeaders, Action<HttpRequestMessage> inject)
    {
        using var request = new HttpRequestMessage(HttpMethod.Parse(context.Request.Method), target) // the shared instance for known methods
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };

        var streamed = body.IsPresent && body.IsStreamed ? new AgentBodyContent(context.Request.Body, options.IdleTimeout, time) : null;
        if (body.IsPresent)
        {
            request.Content = streamed ?? body.ToHttpContent();
        }

        CopyRequestHeaders(context.Request, request, skipRequestHeaders);
        if (request.Content is not null && !body.IsStreamed)
        {
            request.Content.Headers.ContentLength = body.Length;
        }

        inject(request);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(options.UpstreamTimeout);
        try
        {
            var response = await invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            return (response, ForwarderError.None, null);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return (null, ForwarderError.Canceled, ex);
        }
        catch (Exception ex) when (streamed is { Failed: not BodySide.None })
        {
            var error = (streamed.Failed, streamed.IdledOut) switch
            {
                (BodySide.Agent, true) => ForwarderError.AgentIdle,
                (BodySide.Agent, false) => ForwarderError.RequestBodyAgent,
                (_, true) => ForwarderError.UpstreamIdle,
                _ => ForwarderError.RequestBodyUpstream,
            };
            return (null, error, ex);
        }
        catch (OperationCanceledException ex)
        {
            return (null, ForwarderError.Timeout, ex);
        }
        catch (Http.UrlRefusedException ex)
        {
            return (null, ForwarderError.UrlRefused, ex);
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError)
        {
            return (null, ForwarderError.Connect, ex);
        }
        catch (HttpRequestException ex)
        {
            return (null, ForwarderError.Request, ex);
        }
    }

    /// <summary>
    /// Step 2: writes the upstream's status, headers and body to the agent, then its trailers.
    /// <paramref name="extraHeaders"/> are added (Latchkey's own, e.g. <c>latchkey-diagnostic</c>);
    /// <paramref name="prefix"/> is body bytes already read (to classify an error) that go out before the rest of
    /// the stream.
    /// </summary>
    /// <returns><see cref="ForwarderError.None"/>, or the failure: <see cref="ForwarderError.ResponseBodyUpstream"/>
    /// or <see cref="ForwarderError.UpstreamIdle"/> (reading the upstream), <see cref="ForwarderError.ResponseBodyAgent"/>
    /// or <see cref="ForwarderError.AgentIdle"/> (writing to the agent), <see cref="ForwarderError.Canceled"/> (the
    /// agent went away). After any of them the agent's connection is aborted.</returns>
    /// <remarks>With <paramref name="usage"/>, each chunk read from the upstream is shown to it after it was written
    /// and flushed to the agent, from the same buffer: the agent never waits for it, and nothing is copied for it.</remarks>
    public async Task<ForwarderError> CopyResponseAsync(HttpContext context, HttpResponseMessage response, IEnumerable<KeyValuePair<string, string>> extraHeaders, ReadOnlyMemory<byte> prefix = default, Usage.UsageScanner? usage = null)
    {
        var agent = context.Response;
        agent.StatusCode = (int)response.StatusCode;
        CopyResponseHeaders(response.Headers, agent.Headers);
        CopyResponseHeaders(response.Content.Headers, agent.Headers);
        foreach (var (name, value) in extraHeaders)
        {
            agent.Headers[name] = value;
        }

        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var timing = UpstreamTiming.Of(context); // the time to the first body byte (RequestTelemetry)
        using var activity = new ActivityTimeout(options.IdleTimeout, time, context.RequestAborted);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var side = BodySide.Agent;
        try
        {
            if (response.Content.Headers.ContentLength is null)
            {
                // A stream (SSE, chunked): the agent gets the headers now, before the first event. A body of known
                // length goes out with its headers in one write instead.
                await agent.StartAsync(activity.Token).ConfigureAwait(false);
            }

            if (!prefix.IsEmpty)
            {
                timing?.FirstByte(time);
                await agent.Body.WriteAsync(prefix, activity.Token).ConfigureAwait(false);
            }

            side = BodySide.Upstream;
            await using var upstream = await response.Content.ReadAsStreamAsync(activity.Token).ConfigureAwait(false);
            while (true)
            {
                side = BodySide.Upstream;
                var read = await upstream.ReadAsync(buffer, activity.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                timing?.FirstByte(time);
                activity.Restart();
                side = BodySide.Agent;
                await agent.Body.WriteAsync(buffer.AsMemory(0, read), activity.Token).ConfigureAwait(false);
                await agent.Body.FlushAsync(activity.Token).ConfigureAwait(false);
                activity.Restart();
                usage?.Observe(buffer.AsSpan(0, read));
            }

            CopyTrailers(context, response);
            return ForwarderError.None;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException)
        {
            var error = context.RequestAborted.IsCancellationRequested ? ForwarderError.Canceled
                : (side, activity.Expired) switch
                {
                    (BodySide.Upstream, true) => ForwarderError.UpstreamIdle,
                    (BodySide.Upstream, false) => ForwarderError.ResponseBodyUpstream,
                    (_, true) => ForwarderError.AgentIdle,
                    _ => ForwarderError.ResponseBodyAgent,
                };

            // End the agent's connection abruptly, so it sees a truncated response and not a complete-looking one.
            context.Abort();
            return error;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads up to <paramref name="limit"/> bytes of a response body (to classify an error).</summary>
    public static async Task<(byte[] Buffer, int Length, bool Complete)> ReadPrefixAsync(HttpResponseMessage response, int limit, CancellationToken ct)
    {
        var buffer = new byte[limit];
        var length = 0;
        var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        try
        {
            while (length < limit)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    return (buffer, length, true);
                }

                length += n;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            return (buffer, length, true);
        }

        return (buffer, length, false);
    }

    private static void CopyRequestHeaders(HttpRequest source, HttpRequestMessage request, IReadOnlySet<string> skip)
    {
        var connectionTokens = source.Headers.Connection;
        foreach (var header in source.Headers)
        {
            var name = header.Key;
            if (HopByHopHeaders.All.Contains(name) || skip.Contains(name) || name.Equals("Host", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith(':') || IsListedIn(connectionTokens, name))
            {
                continue;
            }

            var value = header.Value;
            var added = value.Count == 1 ? request.Headers.TryAddWithoutValidation(name, value.ToString()) : request.Headers.TryAddWithoutValidation(name, (string[])value!);
            if (!added && request.Content is not null)
            {
                _ = value.Count == 1 ? request.Content.Headers.TryAddWithoutValidation(name, value.ToString()) : request.Content.Headers.TryAddWithoutValidation(name, (string[])value!);
            }
        }
    }

    private static bool IsListedIn(Microsoft.Extensions.Primitives.StringValues connection, string name)
    {
        foreach (var value in connection)
        {
            foreach (var token in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (token.Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>The upstream's trailers (read once its body has ended), where the agent's protocol carries them.</summary>
    private static void CopyTrailers(HttpContext context, HttpResponseMessage response)
    {
        if (response.TrailingHeaders.NonValidated.Count > 0 && context.Response.SupportsTrailers()
            && context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { } trailers)
        {
            CopyResponseHeaders(response.TrailingHeaders, trailers);
        }
    }

    /// <summary>
    /// Copies end-to-end headers. Headers named <c>latchkey-*</c> are Latchkey's own voice to the agent (a diagnostic
    /// with a fix to run, the credential that served): an upstream's are dropped, so it cannot speak in Latchkey's name.
    /// </summary>
    private static void CopyResponseHeaders(HttpHeaders source, IHeaderDictionary destination)
    {
        foreach (var header in source.NonValidated)
        {
            if (HopByHopHeaders.All.Contains(header.Key) || header.Key.StartsWith(LatchkeyHeaderPrefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var values = header.Value;
            destination[header.Key] = values.Count == 1 ? values.ToString() : values.ToArray();
        }
    }
}
