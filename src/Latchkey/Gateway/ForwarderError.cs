namespace Latchkey.Gateway;

/// <summary>
/// How a forwarding step failed, with the side at fault: the agent, the upstream, or neither (the agent went
/// away). Errors are results on the hot path, not exceptions. <see cref="ForwarderErrors.Code"/> names each one
/// in the log, the audit entry and the <c>latchkey-diagnostic</c> header.
/// </summary>
internal enum ForwarderError
{
    None,

    /// <summary>No connection to the upstream (refused, DNS, TLS).</summary>
    Connect,

    /// <summary>The upstream sent no response headers within the timeout.</summary>
    Timeout,

    /// <summary>The connection broke before the response headers (reset, protocol error).</summary>
    Request,

    /// <summary>Reading the agent's request body failed (it broke off, or its framing was malformed).</summary>
    RequestBodyAgent,

    /// <summary>The upstream stopped taking the request body (the connection broke while it was sent).</summary>
    RequestBodyUpstream,

    /// <summary>The upstream's response body broke off after it had started.</summary>
    ResponseBodyUpstream,

    /// <summary>Writing the response body to the agent failed, though the agent had not closed the request.</summary>
    ResponseBodyAgent,

    /// <summary>While a body was copied, the upstream neither sent nor took a byte for the idle limit.</summary>
    UpstreamIdle,

    /// <summary>While a body was copied, the agent neither sent nor took a byte for the idle limit.</summary>
    AgentIdle,

    /// <summary>The agent went away.</summary>
    Canceled,

    /// <summary>The upstream URL failed the URL policy as the request left; nothing was sent.</summary>
    UrlRefused,
}

/// <summary>The reason codes of <see cref="ForwarderError"/>s.</summary>
internal static class ForwarderErrors
{
    /// <summary>The code the log, the audit entry and the diagnostic header use; null for <see cref="ForwarderError.None"/>.</summary>
    public static string? Code(this ForwarderError error) => error switch
    {
        ForwarderError.None => null,
        ForwarderError.Connect => "upstream_unreachable",
        ForwarderError.Timeout => "upstream_timeout",
        ForwarderError.Request => "upstream_reset",
        ForwarderError.RequestBodyAgent => "agent_body_broken",
        ForwarderError.RequestBodyUpstream => "upstream_stopped_reading",
        ForwarderError.ResponseBodyUpstream => "upstream_broke_off",
        ForwarderError.ResponseBodyAgent => "agent_write_failed",
        ForwarderError.UpstreamIdle => "upstream_idle",
        ForwarderError.AgentIdle => "agent_idle",
        ForwarderError.Canceled => "client_closed",
        ForwarderError.UrlRefused => "upstream_url_refused",
        _ => error.ToString(),
    };
}
