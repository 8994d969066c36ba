using System.Diagnostics;
using Latchkey.Diagnostics;
using Latchkey.Http;
using Latchkey.Store;
using Latchkey.Telemetry;
using Latchkey.Tokens;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

using Sent = (HttpResponseMessage? Response, ForwarderError Error, Exception? Exception);

/// <summary>The result of sending one request to one credential's upstream, before anything went to the agent.</summary>
internal sealed class ExchangeOutcome : IDisposable
{
    public required string Credential { get; init; }

    public HttpResponseMessage? Response { get; init; }

    public ForwarderError Error { get; init; }

    public string? ErrorMessage { get; init; }

    /// <summary>Set for failures the gateway explains (auth, rate limits, overload, 5xx, unreachable).</summary>
    public UpstreamDiagnosis? Diagnosis { get; init; }

    /// <summary>Set when an upstream refused the token and the token engine declined to refresh it again
    /// (<see cref="TokenEngine.RefreshSkipped"/>): why, and what to do.</summary>
    public StateReason? RefreshSkipped { get; init; }

    /// <summary>Body bytes already read from <see cref="Response"/> to classify it; they go out first.</summary>
    public ReadOnlyMemory<byte> Prefix { get; init; }

    public int Status => Response is { } r ? (int)r.StatusCode : Error == ForwarderError.Timeout ? 504 : 502;

    public void Dispose() => Response?.Dispose();
}

/// <summary>
/// One request to one credential's upstream: injects the real credential, sends, and on a 401 for an OAuth
/// credential refreshes once (coalesced through the token engine, which bounds forced refreshes per grant) and sends
/// again when the body was kept (at most <see cref="GatewayOptions.RetryBodyLimit"/>), by the policy the stdio bridge
/// shares (<see cref="RefreshAndResend"/>). Failures are classified and recorded in the credential's status; nothing
/// is written to the agent here.
/// </summary>
/// <remarks>The upstream URL is checked as the request leaves (<see cref="Http.UrlPolicyHandler"/>, fed the
/// credential's recorded <see cref="CredentialMetadata.AllowInsecureHttp"/>); a refused one is answered
/// <c>502 upstream_url_refused</c> and nothing is sent.</remarks>
internal sealed class UpstreamExchange(Forwarder forwarder, CredentialResolver credentials, ICredentialStore store, GatewayOptions options, TimeProvider time, ILogger<UpstreamExchange> log)
{
    /// <summary>How many times a request refused with a 401 is sent again after a refresh (see <see cref="RefreshAndResend"/>).</summary>
    private const int MaxResends = 1;

    /// <summary>The skipped request headers of each credential's metadata, built once per metadata version.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<CredentialMetadata, IReadOnlySet<string>> SkippedCache = [];

    /// <summary>Headers that carry the agent's client key or talk to Latchkey itself: never sent upstream.</summary>
    private static readonly HashSet<string> AlwaysSkipped = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "x-api-key", "latchkey-credential", "Cookie",
    };

    public async Task<ExchangeOutcome> SendAsync(HttpContext context, ResolvedCredential credential, string pathAndQuery, RequestBody body)
    {
        var record = credential.Record;
        var secret = credential.Secret;
        if (HasControlCharacters(secret) || HasControlCharacters(record.Metadata.Injection.Format) || record.Metadata.ExtraHeaders.Values.Any(HasControlCharacters))
        {
            return Failed(record.Name, ForwarderError.Request, new UpstreamDiagnosis("credential_malformed",
                $"The stored secret, injection format or a configured header of '{record.Name}' contains CR, LF or NUL, which would split the HTTP request; it was not sent.",
                $"Store it again: latchkey add {record.Name} --upstream {record.Metadata.Upstream} --replace < key.txt", 502, null, null));
        }

        if (record.Metadata.Upstream is not { } upstream)
        {
            return Failed(record.Name, ForwarderError.Request, new UpstreamDiagnosis("no_upstream",
                $"'{record.Name}' has no upstream URL, so the gateway does not know where to send it.",
                $"Set one: latchkey login {record.Name} --upstream URL", 502, null, null));
        }

        if (AgentRequestRules.UpstreamUri(upstream, pathAndQuery) is not { } target)
        {
            return UrlRefused(record, Http.UrlVerdict.NotAbsolute, "(not a URL)", Http.UrlPolicy.Describe(Http.UrlVerdict.NotAbsolute, upstream));
        }

        var timing = UpstreamTiming.Start(context, record.Name, time);
        using var span = LatchkeyTelemetry.Source.StartActivity("latchkey.upstream", ActivityKind.Client);
        var sent = await RefreshAndResend.SendAsync<ResolvedCredential, Sent, UpstreamRequest>(
            credentials, record.Name, credential, secret, new(forwarder, context, target, body, record.Kind == CredentialKind.OAuth), MaxResends, context.RequestAborted).ConfigureAwait(false);
        (record, secret) = sent.Credential!;
        var (response, error, exception) = sent.Response;
        if (span is not null)
        {
            Describe(span, timing, record.Name, target, response, error, sent.Resends, [credential.Secret, secret]);
        }

        var refreshFailure = sent.Token?.Reason;
        if (sent.Resends > 0)
        {
            GatewayLog.RetriedAfterRefresh(log, record.Name);
        }

        switch (sent.End)
        {
            case ResendEnd.RefreshFailed:
                GatewayLog.NotUsable(log, record.Name, refreshFailure?.Code ?? sent.Token!.Status.ToString());
                break;
            case ResendEnd.RefreshSkipped:
                GatewayLog.RefreshSkipped(log, record.Name);
                break;
            case ResendEnd.NotResent:
                GatewayLog.RefreshedNotResent(log, record.Name, options.RetryBodyLimit);
                break;
        }

        if (response is null && error == ForwarderError.UrlRefused)
        {
            var refused = (Http.UrlRefusedException)exception!;
            return UrlRefused(record, refused.Verdict, refused.Origin, refused.Problem);
        }

        if (response is null)
        {
            var code = error.Code()!;
            var diagnosis = error switch
            {
                ForwarderError.Timeout => new UpstreamDiagnosis(code, $"The upstream of '{record.Name}' sent no response within the gateway's timeout.", "Retry; if it keeps happening, raise 'latchkey serve --upstream-timeout'.", 504, null, null),
                ForwarderError.Connect => new UpstreamDiagnosis(code, $"The gateway could not connect to the upstream of '{record.Name}' ({target.GetLeftPart(UriPartial.Authority)}).", "Check the network and the upstream URL ('latchkey status').", 502, null, null),
                ForwarderError.RequestBodyAgent => new UpstreamDiagnosis(code, "The request body broke off before it was all received; the upstream got an incomplete request.", "Send the request again.", 400, null, null),
                ForwarderError.AgentIdle => new UpstreamDiagnosis(code, $"The request body stopped arriving: no byte for {options.IdleTimeout.TotalSeconds:0} s.", "Send the request again; if the body is produced slowly, raise 'latchkey serve --idle-timeout'.", 408, null, null),
                ForwarderError.RequestBodyUpstream => new UpstreamDiagnosis(code, $"The upstream of '{record.Name}' stopped taking the request body before it answered.", "Retry the request.", 502, null, null),
                ForwarderError.UpstreamIdle => new UpstreamDiagnosis(code, $"The upstream of '{record.Name}' took no byte of the request body for {options.IdleTimeout.TotalSeconds:0} s.", "Retry; if it keeps happening, raise 'latchkey serve --idle-timeout'.", 504, null, null),
                ForwarderError.Canceled => null,
                _ => new UpstreamDiagnosis(code, $"The connection to the upstream of '{record.Name}' broke before it answered.", "Retry the request.", 502, null, null),
            };
            if (error is ForwarderError.RequestBodyAgent or ForwarderError.AgentIdle)
            {
                GatewayLog.AgentFailed(log, record.Name, code);
            }
            else if (diagnosis is not null)
            {
                GatewayLog.Unreachable(log, record.Name, error, exception?.GetType().Name ?? error.ToString());
            }

            return new ExchangeOutcome { Credential = record.Name, Error = error, Diagnosis = diagnosis, ErrorMessage = exception?.Message };
        }

        var status = (int)response.StatusCode;
        if (!UpstreamClassifier.IsFailure(status))
        {
            if (record.LastUpstreamFailure is not null && status < 400)
            {
                await store.RecordUpstreamFailureAsync(record.Name, null, CancellationToken.None).ConfigureAwait(false);
                credentials.Forget(record.Name);
            }

            return new ExchangeOutcome { Credential = record.Name, Response = response };
        }

        var (buffer, length, _) = await Forwarder.ReadPrefixAsync(response, UpstreamClassifier.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        var requestId = Header(response, "request-id") ?? Header(response, "x-request-id");
        var found = UpstreamClassifier.Classify(status, buffer.AsSpan(0, length), requestId, Header(response, "retry-after"), record, secret);
        if (found is { Code: "authentication_failed" } && status == 401 && record.Kind == CredentialKind.OAuth)
        {
            found = Explain(found, record.Name, sent.End, refreshFailure);
        }

        if (found is not null)
        {
            GatewayLog.UpstreamFailure(log, record.Name, found.Code, status, found.RequestId, found.Message);
            if (found.IsCredentialFailure)
            {
                await store.RecordUpstreamFailureAsync(record.Name, found.ToFailure(time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
                credentials.Forget(record.Name);
            }
        }

        return new ExchangeOutcome
        {
            Credential = record.Name, Response = response, Diagnosis = found, Prefix = buffer.AsMemory(0, length),
            RefreshSkipped = sent.End == ResendEnd.RefreshSkipped ? refreshFailure : null,
        };
    }

    /// <summary>
    /// Writes an outcome to the agent: the upstream's answer plus Latchkey's headers (a refused credential's error body
    /// explained by <see cref="AgentErrorBody"/>), or Latchkey's own error. A copy that fails after the answer started
    /// (which side, <see cref="ForwarderError"/>) is logged and becomes the audit entry's reason; the agent's connection
    /// is aborted then.
    /// </summary>
    public async Task WriteAsync(HttpContext context, ExchangeOutcome outcome, IEnumerable<KeyValuePair<string, string>> extraHeaders)
    {
        AuditFacts.Of(context)?.Note(outcome);
        if (outcome.Error == ForwarderError.Canceled)
        {
            return;
        }

        var headers = extraHeaders.ToList();
        if (outcome.Diagnosis is { } d)
        {
            headers.Add(new(GatewayErrors.DiagnosticHeader, d.ToHeaderValue(outcome.Credential)));
        }

        if (outcome.Response is { } response)
        {
            var body = outcome.Prefix;
            if (outcome.Diagnosis is { } explained && AgentErrorBody.Rewrite(body.Span, explained, outcome.Credential) is { } rewritten)
            {
                response.Content.Headers.ContentLength = rewritten.Length; // the rest of the upstream's body is empty
                body = rewritten;
            }

            var facts = AuditFacts.Of(context);
            using var usage = facts is { Metered: true } && outcome.Diagnosis is null && response.IsSuccessStatusCode
                ? Usage.UsageScanner.For(response.Content.Headers.ContentType?.ToString(), string.Join(",", response.Content.Headers.ContentEncoding))
                : null;
            var copied = await forwarder.CopyResponseAsync(context, response, headers, body, usage).ConfigureAwait(false);
            if (usage is not null && facts is not null)
            {
                (facts.Usage, facts.AnswerModel) = (usage.Tokens, usage.Model);
            }

            if (copied != ForwarderError.None)
            {
                facts?.Reason = copied.Code();

                if (copied != ForwarderError.Canceled)
                {
                    GatewayLog.ResponseCutShort(log, outcome.Credential, copied.Code()!);
                }
            }

            return;
        }

        foreach (var (name, value) in headers)
        {
            context.Response.Headers[name] = value;
        }

        var diagnosis = outcome.Diagnosis!;
        await GatewayErrors.WriteAsync(context, diagnosis.Status, diagnosis.Code, diagnosis.Message, diagnosis.Fix, outcome.Credential).ConfigureAwait(false);
    }

    private static ExchangeOutcome Failed(string credential, ForwarderError error, UpstreamDiagnosis diagnosis) =>
        new() { Credential = credential, Error = error, Diagnosis = diagnosis };

    /// <summary>The URL policy refused the upstream as the request left: say what is wrong and how to fix it.</summary>
    private ExchangeOutcome UrlRefused(CredentialRecord record, Http.UrlVerdict verdict, string origin, string problem)
    {
        var name = record.Name;
        GatewayLog.UrlRefused(log, name, origin, verdict.ToString());
        var fix = verdict != Http.UrlVerdict.InsecureHttp ? "Give it an https upstream URL"
            : "Use an https upstream URL; if plain http to that machine is intended (a network you trust), add the credential again with --allow-insecure-http";
        fix += record.Metadata.McpTransport is not null ? $": latchkey mcp remove {name}, then latchkey mcp add {name} URL"
            : record.Kind == CredentialKind.OAuth ? $": latchkey login {name} --upstream URL"
            : $": latchkey add {name} --upstream URL --replace < key.txt";
        return Failed(name, ForwarderError.UrlRefused, new UpstreamDiagnosis("upstream_url_refused",
            $"The upstream URL of '{name}' was refused before anything was sent: {problem} Nothing left this machine.", fix, 502, null, null));
    }

    /// <summary>Says what Latchkey did after the 401: refreshed and resent, could not refresh, or refreshed but could not resend.</summary>
    private UpstreamDiagnosis Explain(UpstreamDiagnosis found, string name, ResendEnd after, StateReason? refreshFailure)
    {
        var said = found.Message.IndexOf(" The upstream said:", StringComparison.Ordinal) is var at and >= 0 ? found.Message[at..] : string.Empty;
        return after switch
        {
            ResendEnd.RefreshFailed => found with
            {
                Message = $"The upstream refused the access token of '{name}', and refreshing it failed: {refreshFailure?.Message ?? "the token engine gave no token"}{said}",
                Fix = refreshFailure?.Fix ?? $"Sign in again: latchkey login {name}",
            },
            ResendEnd.RefreshSkipped => found with
            {
                Message = $"The upstream refused the access token of '{name}'. {refreshFailure?.Message}{said}",
                Fix = refreshFailure?.Fix ?? $"Sign in again: latchkey login {name}",
            },
            ResendEnd.NotResent => found with
            {
                Message = $"The upstream refused the access token of '{name}'. Latchkey refreshed it but did not send this request again: its body is over the {options.RetryBodyLimit / (1024 * 1024)} MiB retry limit, or has no declared length.{said}",
                Fix = "Send the request again: it will carry the new token. If it is refused again, sign in again: latchkey login " + name,
            },
            _ => found,
        };
    }

    /// <summary>One agent request to its upstream, as <see cref="RefreshAndResend"/> sends it: with the credential
    /// injected, refused when an OAuth credential's upstream answers 401, sent again only from a kept body.</summary>
    private readonly struct UpstreamRequest(Forwarder forwarder, HttpContext context, Uri target, RequestBody body, bool oauth) : ITokenRequest<ResolvedCredential, Sent>
    {
        public bool CanResend => !body.IsStreamed;

        public ValueTask<Sent> SendAsync(ResolvedCredential credential, CancellationToken ct)
        {
            var identity = AuditFacts.Of(context) is { Metered: true } && HttpMethods.IsPost(context.Request.Method);
            return new(forwarder.SendAsync(context, target, body, Skipped(credential.Record), r =>
            {
                Inject(r, credential.Record, credential.Secret);
                if (identity)
                {
                    AskForIdentity(r);
                }
            }));
        }

        public bool IsRefused(Sent response) => oauth && response.Response is { StatusCode: System.Net.HttpStatusCode.Unauthorized };

        public void Discard(Sent response) => response.Response?.Dispose();
    }

    private static IReadOnlySet<string> Skipped(CredentialRecord record) => SkippedCache.GetValue(record.Metadata, static metadata =>
    {
        var skip = new HashSet<string>(AlwaysSkipped, StringComparer.OrdinalIgnoreCase) { metadata.Injection.Header };
        foreach (var name in metadata.ExtraHeaders.Keys)
        {
            skip.Add(name);
        }

        return System.Collections.Frozen.FrozenSet.ToFrozenSet(skip, StringComparer.OrdinalIgnoreCase);
    });

    private static void Inject(HttpRequestMessage request, CredentialRecord record, string secret)
    {
        Http.UrlPolicyHandler.PermitInsecureHttp(request, record.Metadata.AllowInsecureHttp);
        var rule = record.Metadata.Injection;
        request.Headers.TryAddWithoutValidation(rule.Header, rule.Format.Replace(InjectionRule.SecretPlaceholder, secret, StringComparison.Ordinal));
        foreach (var (name, value) in record.Metadata.ExtraHeaders)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
    }

    /// <summary>
    /// Asks the upstream for an answer without content coding, so its usage can be read as it passes (and an agent
    /// cannot hide its usage from a token budget by asking for a compressed answer). Identity is acceptable to every
    /// HTTP client; the cost is the compression of one answer between the upstream and the gateway. Only for a
    /// metered route's POST (model calls), so downloads through <c>/c</c> keep their compression.
    /// </summary>
    private static void AskForIdentity(HttpRequestMessage request)
    {
        request.Headers.Remove("Accept-Encoding");
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "identity");
    }

    /// <summary>The upstream span's attributes: names, the upstream's host and status, its request id (quoted, with
    /// the injected secrets masked, since the upstream writes it), never the URL's path or query or a header value.</summary>
    private static void Describe(Activity span, UpstreamTiming timing, string credential, Uri target, HttpResponseMessage? response, ForwarderError error, int resends, string[] secrets)
    {
        span.SetTag("latchkey.credential", credential);
        span.SetTag("server.address", target.Host);
        if (resends > 0)
        {
            span.SetTag("latchkey.resends", resends);
        }

        if (response is null)
        {
            span.SetTag("error.type", error.Code() ?? error.ToString());
            span.SetStatus(ActivityStatusCode.Error);
            return;
        }

        span.SetTag("http.response.status_code", LatchkeyTelemetry.Status((int)response.StatusCode));
        if ((Header(response, "request-id") ?? Header(response, "x-request-id")) is { } requestId)
        {
            timing.RequestId = ServerText.Quote(requestId, secrets, ServerText.MaxRequestIdLength);
            span.SetTag("latchkey.upstream.request_id", timing.RequestId);
        }
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static bool HasControlCharacters(string value) => value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0;
}
