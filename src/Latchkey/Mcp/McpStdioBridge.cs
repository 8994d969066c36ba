using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.Logging;

namespace Latchkey.Mcp;

/// <summary>
/// <c>latchkey mcp stdio NAME</c>: a stdio MCP server for clients that only spawn processes, forwarding every
/// JSON-RPC message (one per line on standard input) to the remote server and writing what it answers (JSON, or
/// each SSE <c>message</c> event as it arrives) as lines on standard output — a drop-in for <c>npx mcp-remote URL</c>.
/// </summary>
/// <remarks>
/// <para><b>Why a forwarding loop, not the ModelContextProtocol SDK's client.</b> The bridge must pass every message
/// through unchanged (ids, progress tokens, capabilities, protocol version negotiation are the two ends' business);
/// the SDK's client would terminate the protocol and re-originate it. The loop is faithful by construction.</para>
/// <para><b>Tokens.</b> From the store through the token engine, so any number of bridges (and the gateway) share
/// one grant and one refresh; a 401 forces a refresh (conditional on the refused token still being the stored
/// one, and bounded per grant by the engine: <see cref="TokenEngine.RefreshSkipped"/>) and a resend, at most twice per
/// message (<see cref="RefreshAndResend"/>). A 403 <c>insufficient_scope</c> is recorded and answered with a JSON-RPC error
/// (<see cref="McpStepUp"/>). No browser is ever opened.</para>
/// <para><b>Concurrency.</b> Requests after <c>initialize</c> are forwarded concurrently (a long tool call does not
/// hold up the others); output lines are written whole, one at a time.</para>
/// <para><b>Security.</b> Logs go to standard error and never hold a token or a message body. Every request passes
/// the URL policy as it leaves (<see cref="Http.UrlPolicyHandler"/>, fed the record's
/// <see cref="CredentialMetadata.AllowInsecureHttp"/>). Event streams are read with a bound per event
/// (<see cref="Http.SseReader"/>), and the legacy transport's <c>endpoint</c> must be a URL on the server's own origin.</para>
/// </remarks>
internal sealed partial class McpStdioBridge : IAsyncDisposable
{
    /// <summary>How many times a message refused with a 401 is sent again after a refresh: twice, since a short-lived
    /// token can expire in flight, and so can its replacement (<see cref="RefreshAndResend"/> says why).</summary>
    private const int MaxResends = 2;

    /// <summary>The most of an MCP server's error body read for its message; the rest is never buffered.</summary>
    private const int MaxErrorBodyBytes = 64 * 1024;

    private readonly CredentialRecord _record;
    private readonly ICredentialStore _store;
    private readonly TokenEngine _engine;
    private readonly ITokenSource<TokenResult> _tokens;
    private readonly ILoggerFactory _logs;
    private readonly ILogger _log;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly Uri _url;
    private Stream _stdout = Stream.Null;
    private string? _session;
    private string? _protocolVersion;
    private Uri? _legacyEndpoint;

    /// <param name="record">The MCP server's record.</param>
    /// <param name="store">Where refusals are recorded.</param>
    /// <param name="engine">The process's token engine (<see cref="Composition.LatchkeyServices.Engine"/>).</param>
    /// <param name="http">The client for the server: the composition root's <see cref="Composition.LatchkeyServices.McpClient"/>
    /// (the <see cref="Http.HttpPurpose.Mcp"/> handler behind the URL policy, no overall timeout), owned by the caller.</param>
    /// <param name="time">The clock.</param>
    /// <param name="stderr">Where the bridge's log lines go.</param>
    public McpStdioBridge(CredentialRecord record, ICredentialStore store, TokenEngine engine, HttpClient http, TimeProvider time, TextWriter stderr)
    {
        _record = record;
        _time = time;
        _store = store;
        _engine = engine;
        _tokens = RefreshAndResend.Tokens(engine);
        _http = http;
        _url = new Uri(record.Metadata.Upstream!);
        _logs = LoggerFactory.Create(b => b.AddProvider(new StderrLoggerProvider(stderr)).SetMinimumLevel(LogLevel.Information));
        _log = _logs.CreateLogger("latchkey.mcp.stdio");
    }

    private string Name => _record.Name;

    /// <summary>Runs until standard input ends (or <paramref name="ct"/>), or, on the legacy transport, until the
    /// server's event stream ends (it carries every answer: without it the bridge is of no use); returns the exit code.</summary>
    public async Task<int> RunAsync(Stream stdin, Stream stdout, CancellationToken ct)
    {
        _stdout = stdout;
        var shown = _url.GetLeftPart(UriPartial.Path);
        Log.Started(_log, Name, _record.Metadata.McpTransport!, shown);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task? background = null;
        Task? legacyStream = null;
        if (_record.Metadata.McpTransport == McpTransports.Sse)
        {
            var opened = new TaskCompletionSource<Uri?>(TaskCreationOptions.RunContinuationsAsynchronously);
            background = legacyStream = PumpLegacyAsync(opened, stop.Token);
            _legacyEndpoint = await opened.Task.ConfigureAwait(false);
            if (_legacyEndpoint is null)
            {
                return 1;
            }
        }

        var inflight = new List<Task>();
        using var reader = new StreamReader(stdin, new UTF8Encoding(false));
        while (true)
        {
            // Standard input cannot be cancelled mid-read, so a stream that ends is noticed by racing the read.
            var reading = reader.ReadLineAsync(ct).AsTask();
            if (legacyStream is not null && await Task.WhenAny(reading, legacyStream).ConfigureAwait(false) == legacyStream && !reading.IsCompleted)
            {
                Log.LegacyStreamEnded(_log, Name);
                await stop.CancelAsync().ConfigureAwait(false);
                await Task.WhenAll(inflight).ConfigureAwait(false);
                return 1;
            }

            if (await reading.ConfigureAwait(false) is not { } line)
            {
                break;
            }

            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            inflight.RemoveAll(t => t.IsCompleted);
            var task = ForwardAsync(line, stop.Token);
            if (_session is null && _legacyEndpoint is null && IsInitialize(line))
            {
                await task.ConfigureAwait(false); // the session id comes back on the initialize answer
                if (_session is not null && background is null)
                {
                    background = PumpGetStreamAsync(stop.Token);
                }
            }
            else
            {
                inflight.Add(task);
            }
        }

        await Task.WhenAll(inflight).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        if (background is not null)
        {
            await background.ConfigureAwait(false);
        }

        await EndSessionAsync().ConfigureAwait(false);
        Log.Stopped(_log, Name);
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        _write.Dispose();
        _logs.Dispose();
        await Task.CompletedTask.ConfigureAwait(false);
    }

    private static bool IsInitialize(string line)
    {
        try
        {
            return JsonNode.Parse(line) is JsonObject o && o["method"]?.GetValue<string>() == "initialize";
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Sends one message (with a token; after a 401, a forced refresh and up to <see cref="MaxResends"/>
    /// resends: <see cref="RefreshAndResend"/>) and writes what comes back.</summary>
    private async Task ForwardAsync(string line, CancellationToken ct)
    {
        var body = Encoding.UTF8.GetBytes(line);
        try
        {
            var sent = await RefreshAndResend.SendAsync<TokenResult, HttpResponseMessage, UpstreamRequest>(_tokens, Name, new(this, body), MaxResends, ct).ConfigureAwait(false);
            using var response = sent.Response;
            switch (sent.End)
            {
                case ResendEnd.NoToken or ResendEnd.RefreshFailed:
                    var token = sent.Token!;
                    var why = token.Reason?.Code ?? token.Status.ToString();
                    Log.NoToken(_log, Name, why);
                    await ReplyErrorAsync(body, $"Latchkey has no usable token for '{Name}': {token.Reason?.Message ?? token.Status.ToString()} Run: {token.Reason?.Fix ?? $"latchkey login {Name}"}", ct).ConfigureAwait(false);
                    return;
                case ResendEnd.RefreshSkipped:
                    // The engine declined to spend the grant again: sending the same token would only be refused again.
                    var skipped = sent.Token!.Reason!;
                    Log.Refused(_log, Name, skipped.Code);
                    await _store.RecordUpstreamFailureAsync(Name, new UpstreamFailure("token_rejected", $"The MCP server '{Name}' refused the token. {skipped.Message}", skipped.Fix, 401, null, _time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
                    await ReplyErrorAsync(body, $"The MCP server '{Name}' refused the token. {skipped.Message} {skipped.Fix}", ct).ConfigureAwait(false);
                    return;
                case ResendEnd.Refused or ResendEnd.NotReplaced:
                    var wrong = McpStepUp.WrongAudience(sent.Credential!.AccessToken!, _record.Metadata.Resource);
                    var (code, refusal) = wrong
                        ? ("wrong_audience", $"The MCP server '{Name}' refused the token: it was issued for another audience than {_record.Metadata.Resource}.")
                        : ("token_rejected", $"The MCP server '{Name}' refused the token even after a refresh.");
                    await _store.RecordUpstreamFailureAsync(Name, new UpstreamFailure(code, refusal, $"latchkey login {Name}", 401, null, _time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
                    Log.Refused(_log, Name, code);
                    await ReplyErrorAsync(body, $"{refusal} Run: latchkey login {Name}", ct).ConfigureAwait(false);
                    return;
            }

            if (McpStepUp.Needed(response) is { } scopes)
            {
                var current = await _store.GetAsync(Name, CancellationToken.None).ConfigureAwait(false) ?? _record;
                var message = await McpStepUp.RecordAsync(_store, current, scopes, _time, ct).ConfigureAwait(false);
                var asked = string.Join(' ', scopes);
                Log.StepUp(_log, Name, asked);
                await ReplyErrorAsync(body, message, ct).ConfigureAwait(false);
                return;
            }

            if (response.Headers.TryGetValues(McpTransports.SessionHeader, out var ids) && ids.FirstOrDefault() is { Length: > 0 } id)
            {
                _session ??= id;
            }

            await RelayAsync(response, body, sent.Credential!.AccessToken!, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Http.UrlRefusedException ex)
        {
            Log.UrlRefused(_log, Name, ex.Problem);
            await ReplyErrorAsync(body, $"Latchkey refused to send to the MCP server '{Name}', and nothing was sent: {ex.Problem} {UrlFix}", CancellationToken.None).ConfigureAwait(false);
        }
        catch (Http.SseEventTooLargeException ex)
        {
            Log.StreamRefused(_log, Name, ex.Message);
            await ReplyErrorAsync(body, $"The answer of the MCP server '{Name}' was refused: {ex.Message}", CancellationToken.None).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            var error = ex.HttpRequestError.ToString();
            Log.Unreachable(_log, Name, error);
            await ReplyErrorAsync(body, $"Latchkey could not reach the MCP server '{Name}' ({ex.HttpRequestError}).", CancellationToken.None).ConfigureAwait(false);
        }
    }

    private string UrlFix => $"Use an https URL; if plain http to that machine is intended (a network you trust), add the server again with --allow-insecure-http: latchkey mcp remove {Name}, then latchkey mcp add {Name} URL --allow-insecure-http";

    private void AddHeaders(HttpRequestMessage request, string accessToken)
    {
        Http.UrlPolicyHandler.PermitInsecureHttp(request, _record.Metadata.AllowInsecureHttp);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (_session is not null)
        {
            request.Headers.TryAddWithoutValidation(McpTransports.SessionHeader, _session);
        }

        if (_protocolVersion is not null)
        {
            request.Headers.TryAddWithoutValidation(McpTransports.ProtocolVersionHeader, _protocolVersion);
        }
    }

    /// <summary>
    /// Writes a JSON answer, or each SSE event as it arrives; a 202 has nothing to write. A JSON answer is read up to
    /// the size of the largest SSE event (<see cref="Http.SseReader.MaxEventBytes"/>), an error body up to
    /// <see cref="MaxErrorBodyBytes"/>; the server's error message is quoted with <paramref name="accessToken"/>
    /// masked, since a hostile server could echo the token it was sent.
    /// </summary>
    private async Task RelayAsync(HttpResponseMessage response, byte[] request, string accessToken, CancellationToken ct)
    {
        var status = (int)response.StatusCode;
        if (status is 202 or 204)
        {
            return;
        }

        var media = response.Content.Headers.ContentType?.MediaType;
        if (response.IsSuccessStatusCode && media == "text/event-stream")
        {
            await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            await foreach (var data in Http.SseReader.MessagesAsync(stream, ct).ConfigureAwait(false))
            {
                await WriteMessageAsync(data, ct).ConfigureAwait(false);
            }

            return;
        }

        var limit = response.IsSuccessStatusCode ? Http.SseReader.MaxEventBytes : MaxErrorBodyBytes;
        string text;
        try
        {
            await response.Content.LoadIntoBufferAsync(limit, ct).ConfigureAwait(false);
            text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        }
        catch (HttpRequestException) when (!ct.IsCancellationRequested && !response.IsSuccessStatusCode)
        {
            text = string.Empty; // an error body too large (or broken off): the status alone is reported
        }
        catch (HttpRequestException) when (!ct.IsCancellationRequested)
        {
            Log.UpstreamStatus(_log, Name, status);
            await ReplyErrorAsync(request, $"The MCP server '{Name}' sent an answer that is larger than {Http.SseReader.MaxEventBytes / (1024 * 1024)} MiB or broke off; it was not passed on.", ct).ConfigureAwait(false);
            return;
        }

        if (response.IsSuccessStatusCode && media == "application/json" && text.Length > 0)
        {
            await WriteMessageAsync(text, ct).ConfigureAwait(false);
            return;
        }

        Log.UpstreamStatus(_log, Name, status);
        var detail = TryRpcMessage(text) is { } message ? Diagnostics.ServerText.Quote(message, [accessToken]) : null;
        await ReplyErrorAsync(request, $"The MCP server '{Name}' answered HTTP {status}{(detail is null ? "." : $": {detail}")}", ct).ConfigureAwait(false);
    }

    private static string? TryRpcMessage(string text)
    {
        try
        {
            return JsonNode.Parse(text) is JsonObject o ? (o["error"] as JsonObject)?["message"]?.GetValue<string>() ?? o["error"]?.ToString() : null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Writes one message as one line (re-serialised compactly when it spans lines), noting the negotiated protocol version.</summary>
    private async Task WriteMessageAsync(string json, CancellationToken ct)
    {
        var line = json;
        try
        {
            var node = JsonNode.Parse(json);
            if (node is JsonObject o && o["result"] is JsonObject result && result["protocolVersion"] is JsonValue v && v.TryGetValue<string>(out var version))
            {
                _protocolVersion ??= version;
            }

            if (json.Contains('\n', StringComparison.Ordinal))
            {
                line = node?.ToJsonString() ?? json;
            }
        }
        catch (JsonException)
        {
            return; // not JSON: nothing an MCP client could use
        }

        var bytes = Encoding.UTF8.GetBytes(line + "\n");
        await _write.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            await _stdout.WriteAsync(bytes, CancellationToken.None).ConfigureAwait(false);
            await _stdout.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _write.Release();
        }

        _ = ct;
    }

    private async Task ReplyErrorAsync(byte[] request, string message, CancellationToken ct)
    {
        if (McpStepUp.ErrorResponse(request, message) is { } error)
        {
            await WriteMessageAsync(Encoding.UTF8.GetString(error), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Server-initiated messages on Streamable HTTP: the GET stream, when the server offers one.</summary>
    private async Task PumpGetStreamAsync(CancellationToken ct)
    {
        try
        {
            var token = await _engine.GetAccessTokenAsync(Name, null, ct).ConfigureAwait(false);
            if (token.AccessToken is null)
            {
                return;
            }

            using var request = new HttpRequestMessage(HttpMethod.Get, _url);
            AddHeaders(request, token.AccessToken);
            request.Headers.Accept.Clear();
            request.Headers.Accept.ParseAdd("text/event-stream");
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return; // 405: the server sends nothing unasked
            }

            await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            await foreach (var data in Http.SseReader.MessagesAsync(stream, ct).ConfigureAwait(false))
            {
                await WriteMessageAsync(data, ct).ConfigureAwait(false);
            }
        }
        catch (Http.UrlRefusedException ex)
        {
            Log.UrlRefused(_log, Name, ex.Problem);
        }
        catch (Http.SseEventTooLargeException ex)
        {
            Log.StreamRefused(_log, Name, ex.Message);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
        {
        }
    }

    /// <summary>The legacy transport: GET opens the stream (a 401 handled like a message's: <see cref="RefreshAndResend"/>);
    /// its <c>endpoint</c> event names where to POST (same origin only).</summary>
    private async Task PumpLegacyAsync(TaskCompletionSource<Uri?> opened, CancellationToken ct)
    {
        try
        {
            var sent = await RefreshAndResend.SendAsync<TokenResult, HttpResponseMessage, UpstreamRequest>(_tokens, Name, new(this, null), MaxResends, ct).ConfigureAwait(false);
            using var response = sent.Response;
            switch (sent.End)
            {
                case ResendEnd.NoToken or ResendEnd.RefreshFailed:
                    var why = sent.Token!.Reason?.Code ?? sent.Token.Status.ToString();
                    Log.NoToken(_log, Name, why);
                    return;
                case ResendEnd.RefreshSkipped:
                    Log.StreamRefused(_log, Name, sent.Token!.Reason!.Message);
                    return;
                case ResendEnd.Refused or ResendEnd.NotReplaced:
                    Log.Refused(_log, Name, "token_rejected");
                    return;
            }

            if (!response.IsSuccessStatusCode)
            {
                Log.UpstreamStatus(_log, Name, (int)response.StatusCode);
                return;
            }

            await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            await foreach (var item in Http.SseReader.ReadAsync(stream, ct).ConfigureAwait(false))
            {
                if (item.EventType == "endpoint")
                {
                    if (McpSse.ResolveEndpoint(_url, item.Data, out var problem) is not { } endpoint)
                    {
                        Log.StreamRefused(_log, Name, $"the server was not followed: {problem}");
                        break;
                    }

                    opened.TrySetResult(endpoint);
                }
                else if (item.Data.Length > 0)
                {
                    await WriteMessageAsync(item.Data, ct).ConfigureAwait(false);
                }
            }
        }
        catch (Http.UrlRefusedException ex)
        {
            Log.UrlRefused(_log, Name, $"{ex.Problem} {UrlFix}");
        }
        catch (Http.SseEventTooLargeException ex)
        {
            Log.StreamRefused(_log, Name, ex.Message);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
        {
        }
        finally
        {
            opened.TrySetResult(null);
        }
    }

    /// <summary>Sends a message (POST), or with no message opens the legacy stream (GET), with <paramref name="token"/>;
    /// a 401 is logged with how long the token had left when it was sent and how long the answer took.</summary>
    private async ValueTask<HttpResponseMessage> SendAsync(byte[]? message, TokenResult token, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(message is null ? HttpMethod.Get : HttpMethod.Post, message is null ? _url : _legacyEndpoint ?? _url);
        if (message is null)
        {
            Http.UrlPolicyHandler.PermitInsecureHttp(request, _record.Metadata.AllowInsecureHttp);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.AccessToken);
            request.Headers.Accept.ParseAdd("text/event-stream");
        }
        else
        {
            request.Content = new ByteArrayContent(message);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            AddHeaders(request, token.AccessToken!);
        }

        var sent = _time.GetTimestamp();
        var left = token.ExpiresAt is { } expires ? (long)(expires - _time.GetUtcNow()).TotalMilliseconds : -1;
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            var took = (long)_time.GetElapsedTime(sent).TotalMilliseconds;
            Log.Unauthorized(_log, Name, left, took);
        }

        return response;
    }

    /// <summary>Ends the Streamable HTTP session (DELETE), best-effort.</summary>
    private async Task EndSessionAsync()
    {
        if (_session is null)
        {
            return;
        }

        try
        {
            var token = await _engine.GetAccessTokenAsync(Name, null, CancellationToken.None).ConfigureAwait(false);
            if (token.AccessToken is null)
            {
                return;
            }

            using var request = new HttpRequestMessage(HttpMethod.Delete, _url);
            AddHeaders(request, token.AccessToken);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            using var response = await _http.SendAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException)
        {
        }
    }

    /// <summary>One request to the MCP server as <see cref="RefreshAndResend"/> sends it: a message (or, with none, the
    /// GET that opens the legacy stream), refused on a 401, always sendable again (the message is kept).</summary>
    private readonly struct UpstreamRequest(McpStdioBridge bridge, byte[]? message) : ITokenRequest<TokenResult, HttpResponseMessage>
    {
        public bool CanResend => true;

        public ValueTask<HttpResponseMessage> SendAsync(TokenResult credential, CancellationToken ct) => bridge.SendAsync(message, credential, ct);

        public bool IsRefused(HttpResponseMessage response) => response.StatusCode == HttpStatusCode.Unauthorized;

        public void Discard(HttpResponseMessage response) => response.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 510, Level = LogLevel.Information, Message = "bridging stdio to MCP server '{Server}' ({Transport}) at {Url}")]
        public static partial void Started(ILogger logger, string server, string transport, string url);

        [LoggerMessage(EventId = 511, Level = LogLevel.Information, Message = "standard input ended; bridge to '{Server}' stopped")]
        public static partial void Stopped(ILogger logger, string server);

        [LoggerMessage(EventId = 512, Level = LogLevel.Information, Message = "'{Server}' answered 401 (the token had {LeftMs} ms left by its stored expiry when sent, the answer took {TookMs} ms)")]
        public static partial void Unauthorized(ILogger logger, string server, long leftMs, long tookMs);

        [LoggerMessage(EventId = 513, Level = LogLevel.Warning, Message = "'{Server}' refused the token after a refresh ({Code}); run 'latchkey login {Server}'")]
        public static partial void Refused(ILogger logger, string server, string code);

        [LoggerMessage(EventId = 514, Level = LogLevel.Warning, Message = "'{Server}' needs more scope ({Scopes}); recorded, run 'latchkey login {Server}'")]
        public static partial void StepUp(ILogger logger, string server, string scopes);

        [LoggerMessage(EventId = 515, Level = LogLevel.Warning, Message = "no usable token for '{Server}' ({Code})")]
        public static partial void NoToken(ILogger logger, string server, string code);

        [LoggerMessage(EventId = 516, Level = LogLevel.Warning, Message = "'{Server}' could not be reached ({Error})")]
        public static partial void Unreachable(ILogger logger, string server, string error);

        [LoggerMessage(EventId = 517, Level = LogLevel.Warning, Message = "'{Server}' answered HTTP {Status}")]
        public static partial void UpstreamStatus(ILogger logger, string server, int status);

        [LoggerMessage(EventId = 518, Level = LogLevel.Warning, Message = "'{Server}': its event stream was refused, and nothing was sent anywhere else: {Reason}")]
        public static partial void StreamRefused(ILogger logger, string server, string reason);

        [LoggerMessage(EventId = 520, Level = LogLevel.Warning, Message = "the legacy event stream of '{Server}' ended, and it carries every answer: the bridge stops (the MCP client may start it again)")]
        public static partial void LegacyStreamEnded(ILogger logger, string server);

        [LoggerMessage(EventId = 519, Level = LogLevel.Warning, Message = "'{Server}': the URL policy refused the request before it was sent: {Problem}")]
        public static partial void UrlRefused(ILogger logger, string server, string problem);
    }

    /// <summary>Writes log lines to standard error (never standard output, which carries the protocol).</summary>
    private sealed class StderrLoggerProvider(TextWriter stderr) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new StderrLogger(stderr);

        public void Dispose()
        {
        }

        private sealed class StderrLogger(TextWriter stderr) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (stderr)
                {
                    stderr.WriteLine($"latchkey mcp: {formatter(state, exception)}");
                    stderr.Flush();
                }
            }
        }
    }
}
