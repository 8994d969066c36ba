using System.Net;

namespace Latchkey.Http;

/// <summary>What an HTTP handler is for; each purpose gets its own tuned <see cref="SocketsHttpHandler"/>.</summary>
internal enum HttpPurpose
{
    /// <summary>The gateway's requests to upstreams (<c>/c</c>, <c>/r</c>, <c>/mcp</c>): many connections, long bodies.</summary>
    Forwarding,

    /// <summary>Calls to authorization servers: metadata, registration, token, revocation, device authorization.</summary>
    OAuth,

    /// <summary>The stdio bridge's requests to one remote MCP server, and its long-lived event stream.</summary>
    Mcp,

    /// <summary>A command's health check of this home's own gateway on loopback (<c>/healthz</c>): a 1 s connect
    /// timeout, since a gateway that is there answers at once.</summary>
    GatewayProbe,
}

/// <summary>
/// The one place Latchkey's <see cref="SocketsHttpHandler"/>s are configured, one per <see cref="HttpPurpose"/>
/// (the pattern of YARP's <c>ForwarderHttpClientFactory</c>). Every handler sends only what it is given: no proxy
/// from the environment, no redirect followed, no cookie kept, nothing decompressed, a connect timeout of 10 s (1 s for
/// the loopback <see cref="HttpPurpose.GatewayProbe"/>), and pooled connections retired after
/// <see cref="PooledConnectionLifetime"/> so a changed DNS answer is picked up.
/// </summary>
/// <remarks>
/// Callers put the handler behind <see cref="UrlPolicyHandler"/> (every request Latchkey sends with a credential
/// or token is checked as it leaves; the gateway probe carries neither) and own what they create: the composition root
/// (<c>Composition.LatchkeyServices</c>, above this layer) creates one of each, on first use, for the whole process.
/// </remarks>
internal static class HttpHandlerFactory
{
    /// <summary>How long an upstream connection is kept before it is replaced (forwarding and MCP).</summary>
    public static readonly TimeSpan PooledConnectionLifetime = TimeSpan.FromMinutes(5);

    /// <summary>How long an authorization server's connection is kept (token calls are rare and short).</summary>
    public static readonly TimeSpan OAuthConnectionLifetime = TimeSpan.FromMinutes(2);

    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    /// <summary>A new handler tuned for <paramref name="purpose"/>; the caller disposes it.</summary>
    public static SocketsHttpHandler Create(HttpPurpose purpose)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = purpose == HttpPurpose.GatewayProbe ? TimeSpan.FromSeconds(1) : ConnectTimeout,
            PooledConnectionLifetime = purpose == HttpPurpose.OAuth ? OAuthConnectionLifetime : PooledConnectionLifetime,

            // Plain http to localhost reaches only a loopback address: a name that resolves elsewhere is refused
            // before a byte is sent (UrlPolicy.ConnectAsync), for every purpose alike.
            ConnectCallback = UrlPolicy.ConnectAsync,
        };

        if (purpose == HttpPurpose.Forwarding)
        {
            // The settings YARP's forwarder uses: HTTP/2 may open more connections than one, idle ones go after a
            // minute, no per-server cap, and no tracing headers added to an agent's request.
            handler.EnableMultipleHttp2Connections = true;
            handler.PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60);
            handler.MaxConnectionsPerServer = int.MaxValue;
            handler.ActivityHeadersPropagator = null;
        }

        return handler;
    }

    /// <summary>A new handler for <paramref name="purpose"/> behind the URL policy check; the caller disposes it.</summary>
    public static HttpMessageHandler CreateChecked(HttpPurpose purpose) => new UrlPolicyHandler(Create(purpose));
}
