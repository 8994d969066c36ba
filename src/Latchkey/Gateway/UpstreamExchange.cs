using Latchkey.Diagnostics;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>The result of sending one request to one credential's upstream, before anything went to the agent.</summary>
internal sealed class ExchangeOutcome : IDisposable
{
    public required string Credential { get; init; }

    public HttpResponseMessage? Response { get; init; }

    public ForwarderError Error { get; init; }

    public string? ErrorMessage { get; init; }

    /// <summary>Set for failures the gateway explains (auth, rate limits, overload, 5xx, unreachable).</summary>
    public UpstreamDiagnosis? Diagnosis { get; init; }

    /// <summary>Body bytes already read from <see cref="Response"/> to classify it; they go out first.</summary>
    public ReadOnlyMemory<byte> Prefix { get; init; }

    public int Status => Response is { } r ? (int)r.StatusCode : Error == ForwarderError.Timeout ? 504 : 502;

    public void Dispose() => Response?.Dispose();
}

/// <summary>
/// One request to one credential's upstream: injects the real credential, sends, and on a 401 for an OAuth
/// credential refreshes once (coalesced through the token engine) and sends again when the body was kept.
/// Failures are classified and recorded in the credential's status; nothing is written to the agent here.
/// </summary>
internal sealed class UpstreamExchange(Forwarder forwarder, CredentialResolver credentials, ICredentialStore store, TimeProvider time, ILogger<UpstreamExchange> log)
{
    /// <summary>Headers that carry the agent's client key or talk to Latchkey itself: never sent upstream.</summary>
    private static readonly HashSet<string> AlwaysSkipped = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "x-api-key", "latchkey-credential", "Cookie",
    };

    public async Task<ExchangeOutcome> SendAsync(HttpContext context, ResolvedCredential credential, string pathAndQuery, RequestBody body)
    {
        var record = credential.Record;
        var secret = credential.Secret;
        if (HasControlCharacters(secret) || record.Metadata.ExtraHeaders.Values.Any(HasControlCharacters))
        {
            return Failed(record.Name, ForwarderError.Request, new UpstreamDiagnosis("credential_malformed",
                $"The stored secret or a configured header of '{record.Name}' contains CR, LF or NUL, which would split the HTTP request; it was not sent.",
                $"Store it again: latchkey add {record.Name} --upstream {record.Metadata.Upstream} --replace < key.txt", 502, null, null));
        }

        if (record.Metadata.Upstream is not { } upstream)
        {
            return Failed(record.Name, ForwarderError.Request, new UpstreamDiagnosis("no_upstream",
                $"'{record.Name}' has no upstream URL, so the gateway does not know where to send it.",
                $"Set one: latchkey login {record.Name} --upstream URL", 502, null, null));
        }

        var target = new Uri(upstream.TrimEnd('/') + pathAndQuery);
        var skip = Skipped(record);
        var (response, error, exception) = await forwarder.SendAsync(context, target, body, skip, r => Inject(r, record, secret)).ConfigureAwait(false);

        if (response is { StatusCode: System.Net.HttpStatusCode.Unauthorized } && record.Kind == CredentialKind.OAuth && !body.IsStreamed)
        {
            var (fresh, result) = await credentials.RefreshAfterRejectionAsync(record.Name, secret, context.RequestAborted).ConfigureAwait(false);
            if (fresh is not null && !string.Equals(fresh.Secret, secret, StringComparison.Ordinal))
            {
                response.Dispose();
                GatewayLog.RetriedAfterRefresh(log, record.Name);
                record = fresh.Record;
                secret = fresh.Secret;
                (response, error, exception) = await forwarder.SendAsync(context, target, body, Skipped(record), r => Inject(r, record, secret)).ConfigureAwait(false);
            }
            else if (result.Status != TokenStatus.Ok)
            {
                GatewayLog.NotUsable(log, record.Name, result.Reason?.Code ?? result.Status.ToString());
            }
        }

        if (response is null)
        {
            var diagnosis = error switch
            {
                ForwarderError.Timeout => new UpstreamDiagnosis("upstream_timeout", $"The upstream of '{record.Name}' sent no response within the gateway's timeout.", "Retry; if it keeps happening, raise 'latchkey serve --upstream-timeout'.", 504, null, null),
                ForwarderError.Connect => new UpstreamDiagnosis("upstream_unreachable", $"The gateway could not connect to the upstream of '{record.Name}' ({target.GetLeftPart(UriPartial.Authority)}).", "Check the network and the upstream URL ('latchkey status').", 502, null, null),
                ForwarderError.Canceled => null,
                _ => new UpstreamDiagnosis("upstream_reset", $"The connection to the upstream of '{record.Name}' broke before it answered.", "Retry the request.", 502, null, null),
            };
            if (diagnosis is not null)
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
        if (found is not null)
        {
            GatewayLog.UpstreamFailure(log, record.Name, found.Code, status, found.RequestId, found.Message);
            if (found.IsCredentialFailure)
            {
                await store.RecordUpstreamFailureAsync(record.Name, found.ToFailure(time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
                credentials.Forget(record.Name);
            }
        }

        return new ExchangeOutcome { Credential = record.Name, Response = response, Diagnosis = found, Prefix = buffer.AsMemory(0, length) };
    }

    /// <summary>Writes an outcome to the agent: the upstream's answer unchanged plus Latchkey's headers, or Latchkey's own error.</summary>
    public static async Task WriteAsync(HttpContext context, ExchangeOutcome outcome, IEnumerable<KeyValuePair<string, string>> extraHeaders)
    {
        Audit.AuditFacts.Of(context)?.Note(outcome);
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
            await Forwarder.CopyResponseAsync(context, response, headers, outcome.Prefix).ConfigureAwait(false);
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

    private static HashSet<string> Skipped(CredentialRecord record)
    {
        var skip = new HashSet<string>(AlwaysSkipped, StringComparer.OrdinalIgnoreCase) { record.Metadata.Injection.Header };
        foreach (var name in record.Metadata.ExtraHeaders.Keys)
        {
            skip.Add(name);
        }

        return skip;
    }

    private static void Inject(HttpRequestMessage request, CredentialRecord record, string secret)
    {
        var rule = record.Metadata.Injection;
        request.Headers.TryAddWithoutValidation(rule.Header, rule.Format.Replace(InjectionRule.SecretPlaceholder, secret, StringComparison.Ordinal));
        foreach (var (name, value) in record.Metadata.ExtraHeaders)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static bool HasControlCharacters(string value) => value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0;
}
