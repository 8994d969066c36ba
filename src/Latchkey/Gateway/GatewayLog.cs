using Latchkey.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// The gateway's log lines. None carries secret material or bodies: names, codes, ids and times only. A value a
/// caller chose (a request's path, a name from it) is quoted (<see cref="ServerText.Quote(string, IEnumerable{string?}, int)"/>:
/// cut, control and format characters replaced, client keys masked), so a request cannot forge a line, write a
/// terminal escape or grow a line without bound; lines about refused requests are written under a budget
/// (<see cref="RefusedRequestLog"/>).
/// </summary>
internal static partial class GatewayLog
{
    /// <summary>The most characters of a caller's value (a path, a name) a line quotes.</summary>
    public const int MaxQuotedLength = ServerText.MaxLength;

    /// <summary>A line for a refused request, its path quoted. Call through <see cref="RefusedRequestLog"/>, which budgets them.</summary>
    public static void Refused(ILogger logger, string path, string reason) => RefusedLine(logger, ServerText.Quote(path, [], MaxQuotedLength), reason);

    /// <summary>A credential that cannot be used; its name quoted (it may come from the request's path).</summary>
    public static void NotUsable(ILogger logger, string credential, string code) => NotUsableLine(logger, ServerText.Quote(credential, [], MaxQuotedLength), code);

    [LoggerMessage(1, LogLevel.Information, "Latchkey gateway listening on {Addresses} (home {Home})")]
    public static partial void Listening(ILogger logger, string addresses, string home);

    [LoggerMessage(2, LogLevel.Warning, "Upstream failure on {Credential}: {Code} (status {Status}, request id {RequestId}): {Message}")]
    public static partial void UpstreamFailure(ILogger logger, string credential, string code, int status, string? requestId, string message);

    [LoggerMessage(3, LogLevel.Information, "Refreshed {Credential} after a 401 from its upstream and retried the request")]
    public static partial void RetriedAfterRefresh(ILogger logger, string credential);

    [LoggerMessage(4, LogLevel.Warning, "Refused a request for {Path}: {Reason}")]
    private static partial void RefusedLine(ILogger logger, string path, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Upstream {Credential} unreachable ({Error}): {Message}")]
    public static partial void Unreachable(ILogger logger, string credential, ForwarderError error, string message);

    [LoggerMessage(6, LogLevel.Information, "Router {Router}: {Credential} answered {Status}; trying the next target")]
    public static partial void FallingBack(ILogger logger, string router, string credential, int status);

    [LoggerMessage(7, LogLevel.Warning, "Credential {Credential} is not usable: {Code}")]
    private static partial void NotUsableLine(ILogger logger, string credential, string code);

    [LoggerMessage(8, LogLevel.Information, "Refreshed {Credential} after a 401 from its upstream; the request was not resent (body over {Limit} bytes or of unknown length)")]
    public static partial void RefreshedNotResent(ILogger logger, string credential, int limit);

    [LoggerMessage(9, LogLevel.Warning, "{Credential}'s upstream was refused by the URL policy as the request left ({Origin}: {Verdict}); nothing was sent")]
    public static partial void UrlRefused(ILogger logger, string credential, string origin, string verdict);

    [LoggerMessage(10, LogLevel.Warning, "{Credential}'s upstream refused the token a forced refresh had just produced; not refreshed again (the grant is spared)")]
    public static partial void RefreshSkipped(ILogger logger, string credential);

    [LoggerMessage(11, LogLevel.Warning, "Refused {Count} more requests from {Source} without a line each (over the log's budget for refused requests)")]
    public static partial void RefusedNotLogged(ILogger logger, long count, string source);

    [LoggerMessage(12, LogLevel.Warning, "The answer of {Credential}'s upstream was cut short ({Code}); the agent's connection was aborted")]
    public static partial void ResponseCutShort(ILogger logger, string credential, string code);

    [LoggerMessage(13, LogLevel.Information, "A request to {Credential}'s upstream failed on the agent's side ({Code})")]
    public static partial void AgentFailed(ILogger logger, string credential, string code);
}

/// <summary>
/// The "Refused a request" lines under a budget: anyone who reaches the port can send requests the gateway refuses,
/// and a line for each would fill the disk (a flood of 100,000 requests with 2 KB paths wrote 211 MB in 8 s). Each
/// source (<see cref="AuditRecorder.SourceOf(HttpContext)"/>) may have <see cref="Burst"/> lines, refilled at
/// <see cref="PerSecond"/> a second, and all together <see cref="GlobalBurst"/>, refilled at
/// <see cref="GlobalPerSecond"/>; what is not written is counted and said in at most
/// <see cref="Audit.RefusedEntryLimiter.MaxSummaries"/> lines every <see cref="SummaryInterval"/>.
/// </summary>
/// <remarks>The audit table keeps its own, larger budget of refused requests (<see cref="Audit.AuditWriter.RecordRefused"/>).
/// Thread-safe.</remarks>
internal sealed class RefusedRequestLog : IDisposable
{
    public const int Burst = 20;
    public const double PerSecond = 1;
    public const int GlobalBurst = 100;
    public const double GlobalPerSecond = 2;
    public static readonly TimeSpan SummaryInterval = TimeSpan.FromSeconds(10);

    private readonly ILogger _log;
    private readonly Audit.RefusedEntryLimiter _budget;
    private readonly ITimer _summaries;

    public RefusedRequestLog(ILogger log, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _log = log;
        _budget = new Audit.RefusedEntryLimiter(time, Burst, PerSecond, Audit.RefusedEntryLimiter.DefaultMaxSources, GlobalBurst, GlobalPerSecond);
        _summaries = time.CreateTimer(_ => Summarise(), null, SummaryInterval, SummaryInterval);
    }

    /// <summary>Writes the line for a refused request if the budget has room (its path quoted), or counts it.</summary>
    public void Refused(HttpContext context, string path, string reason)
    {
        if (_budget.TryTake(AuditRecorder.SourceOf(context)))
        {
            GatewayLog.Refused(_log, path, reason);
        }
    }

    /// <summary>Writes one line per source (at most a few) for the refused requests not written since the last summary.</summary>
    public void Summarise()
    {
        foreach (var (source, count) in _budget.TakeDropped())
        {
            GatewayLog.RefusedNotLogged(_log, count, source);
        }
    }

    public void Dispose()
    {
        _summaries.Dispose();
        Summarise();
    }
}
