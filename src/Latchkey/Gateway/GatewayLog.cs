using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>The gateway's log lines. None carries secret material or bodies: names, codes, ids and times only.</summary>
internal static partial class GatewayLog
{
    [LoggerMessage(1, LogLevel.Information, "Latchkey gateway listening on {Addresses} (home {Home})")]
    public static partial void Listening(ILogger logger, string addresses, string home);

    [LoggerMessage(2, LogLevel.Warning, "Upstream failure on {Credential}: {Code} (status {Status}, request id {RequestId}): {Message}")]
    public static partial void UpstreamFailure(ILogger logger, string credential, string code, int status, string? requestId, string message);

    [LoggerMessage(3, LogLevel.Information, "Refreshed {Credential} after a 401 from its upstream and retried the request")]
    public static partial void RetriedAfterRefresh(ILogger logger, string credential);

    [LoggerMessage(4, LogLevel.Warning, "Refused a request for {Path}: {Reason}")]
    public static partial void Refused(ILogger logger, string path, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Upstream {Credential} unreachable ({Error}): {Message}")]
    public static partial void Unreachable(ILogger logger, string credential, ForwarderError error, string message);

    [LoggerMessage(6, LogLevel.Information, "Router {Router}: {Credential} answered {Status}; trying the next target")]
    public static partial void FallingBack(ILogger logger, string router, string credential, int status);

    [LoggerMessage(7, LogLevel.Warning, "Credential {Credential} is not usable: {Code}")]
    public static partial void NotUsable(ILogger logger, string credential, string code);

    [LoggerMessage(8, LogLevel.Information, "Refreshed {Credential} after a 401 from its upstream; the request was not resent (body over {Limit} bytes or of unknown length)")]
    public static partial void RefreshedNotResent(ILogger logger, string credential, int limit);

    [LoggerMessage(9, LogLevel.Warning, "{Credential}'s upstream was refused by the URL policy as the request left ({Origin}: {Verdict}); nothing was sent")]
    public static partial void UrlRefused(ILogger logger, string credential, string origin, string verdict);

    [LoggerMessage(10, LogLevel.Warning, "{Credential}'s upstream refused the token a forced refresh had just produced; not refreshed again (the grant is spared)")]
    public static partial void RefreshSkipped(ILogger logger, string credential);
}
