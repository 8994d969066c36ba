namespace Latchkey.Gateway;

/// <summary>How a forwarding step failed. Errors are results on the hot path, not exceptions.</summary>
internal enum ForwarderError
{
    None,

    /// <summary>No connection to the upstream (refused, DNS, TLS).</summary>
    Connect,

    /// <summary>The upstream sent no response headers within the timeout.</summary>
    Timeout,

    /// <summary>The connection broke before the response headers (reset, protocol error).</summary>
    Request,

    /// <summary>Reading the agent's request body failed.</summary>
    RequestBody,

    /// <summary>The upstream's response body broke off after it had started.</summary>
    ResponseBody,

    /// <summary>The agent went away.</summary>
    Canceled,

    /// <summary>The upstream URL failed the URL policy as the request left; nothing was sent.</summary>
    UrlRefused,
}
