using Latchkey.Audit;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// What the gateway learns about one audited request while it handles it (a request feature, so only the
/// request's own thread touches it). Names and codes only: never a key, a token or a body.
/// </summary>
internal sealed class AuditFacts
{
    /// <summary>The name of the presented client key, once it is recognised.</summary>
    public string? ClientKey { get; set; }

    /// <summary>Set once a valid client key that allows the route was presented. A request answered 4xx without it
    /// was refused by the gateway; its entry is rate-limited per source (<see cref="AuditWriter.RecordRefused"/>).</summary>
    public bool Authorized { get; set; }

    /// <summary>The credential that served, or that was asked for.</summary>
    public string? Credential { get; set; }

    public int? UpstreamStatus { get; set; }

    /// <summary>The diagnostic reason code the answer carried.</summary>
    public string? Reason { get; set; }

    /// <summary>What to record as the path instead of the request's own, when that must not be kept (it held a client key).</summary>
    public string? Path { get; set; }

    /// <summary>
    /// Set by the routes whose answers can carry token usage (<c>/c</c>, <c>/r</c>): their successful JSON and
    /// event-stream answers are read for it as they pass (<see cref="Latchkey.Usage.UsageScanner"/>).
    /// </summary>
    public bool Metered { get; set; }

    /// <summary>The model the request named, when the gateway read its body (a router, a kept body): the usage's model
    /// when the answer names none.</summary>
    public string? RequestModel { get; set; }

    /// <summary>The usage the answer reported, once it has been copied to the agent; null when it reported none.</summary>
    public Latchkey.Usage.UsageTokens? Usage { get; set; }

    /// <summary>The model the answer named, or null.</summary>
    public string? AnswerModel { get; set; }

    /// <summary>Takes what the upstream exchange found: the credential that served, its status, the diagnosis.</summary>
    public void Note(ExchangeOutcome outcome)
    {
        Credential = outcome.Credential;
        UpstreamStatus = outcome.Response is { } response ? (int)response.StatusCode : null;
        Reason = outcome.Diagnosis?.Code ?? (outcome.Error == ForwarderError.Canceled ? outcome.Error.Code() : null);
    }

    /// <summary>The facts of an audited request, or null for a request that is not audited.</summary>
    public static AuditFacts? Of(HttpContext context) => context.Features.Get<AuditFacts>();
}
