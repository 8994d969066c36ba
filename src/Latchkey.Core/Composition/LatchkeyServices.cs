using Latchkey.Audit;
using Latchkey.Http;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.Logging;

namespace Latchkey.Composition;

/// <summary>
/// The composition root: the one place Latchkey's services are built, for every entry point — the commands (through
/// <c>CliApp</c>), the gateway (which hands these same instances to its container), the dashboard's actions, the
/// stdio bridge and the native <c>latchkey-token</c>. It holds the store (with its key material), the HTTP clients
/// for forwarding, OAuth and MCP (each on its own handler from <see cref="HttpHandlerFactory"/>), the OAuth client, the one
/// <see cref="TokenEngine"/> of the process, and makes the audit writer.
/// </summary>
/// <remarks>
/// <para><b>Lazy.</b> Nothing but the store is built until it is asked for: <c>latchkey token</c> on an API key
/// builds no HTTP client at all, and a refresh builds only the OAuth one.</para>
/// <para><b>One of each.</b> Every property returns the same instance each time, whichever thread asks first (they
/// are made under one lock), so a process has one token engine (one refresh flight per grant) and one connection
/// pool per purpose.</para>
/// <para><b>Ownership.</b> The root owns what it builds and disposes it in <see cref="DisposeAsync"/>: the HTTP
/// clients, then the store. <see cref="CreateAuditWriter"/> is the exception: its caller owns the writer and must
/// dispose it (writing what is queued) before the root.</para>
/// </remarks>
internal sealed class LatchkeyServices(ILatchkeyStore store, TimeProvider time) : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly List<IDisposable> _owned = [];
    private OAuthHttp? _oauthHttp;
    private TokenEndpointClient? _tokens;
    private TokenEngine? _engine;
    private SignInService? _signIn;
    private HttpMessageInvoker? _forwarding;
    private HttpClient? _mcp;

    /// <summary>The store, with its key material, as <c>--store</c> (<paramref name="storeOption"/>), else
    /// <c>LATCHKEY_STORE</c>, else SQLite in <paramref name="home"/> chooses (<see cref="StoreSelector"/>).</summary>
    /// <exception cref="StoreException">The store cannot be chosen, opened or unlocked; the message says what to do.</exception>
    public static LatchkeyServices Open(string? storeOption, StoreHome home, TimeProvider time) =>
        new(StoreSelector.Open(storeOption, home, time), time);

    public ILatchkeyStore Store { get; } = store;

    public TimeProvider Time { get; } = time;

    /// <summary>The process's one token engine: the only code that spends a grant.</summary>
    public TokenEngine Engine
    {
        get
        {
            lock (_gate)
            {
                return _engine ??= new TokenEngine(Store, Tokens, Time);
            }
        }
    }

    /// <summary>Sign-in (<c>latchkey login</c>, <c>mcp add</c>, the dashboard's reconnect), on the same OAuth client.</summary>
    public SignInService SignIn
    {
        get
        {
            lock (_gate)
            {
                return _signIn ??= new SignInService(Store, OAuthHttp, new Discovery(OAuthHttp), new ClientRegistrar(OAuthHttp), new GrantFlows(OAuthHttp, Tokens, Time), Time);
            }
        }
    }

    /// <summary>The gateway's upstream invoker: the <see cref="HttpPurpose.Forwarding"/> handler behind the URL policy.</summary>
    public HttpMessageInvoker ForwardingInvoker
    {
        get
        {
            lock (_gate)
            {
                return _forwarding ??= Own(new HttpMessageInvoker(HttpHandlerFactory.CreateChecked(HttpPurpose.Forwarding), disposeHandler: true));
            }
        }
    }

    /// <summary>The stdio bridge's client: the <see cref="HttpPurpose.Mcp"/> handler behind the URL policy, no
    /// overall timeout (an event stream stays open for as long as the session).</summary>
    public HttpClient McpClient
    {
        get
        {
            lock (_gate)
            {
                return _mcp ??= Own(new HttpClient(HttpHandlerFactory.CreateChecked(HttpPurpose.Mcp), disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan });
            }
        }
    }

    /// <summary>The token endpoint client; its HTTP client is built on its first request (a token engine that never
    /// refreshes never builds it). Called under the lock.</summary>
    private TokenEndpointClient Tokens => _tokens ??= new TokenEndpointClient(new Lazy<OAuthHttp>(() =>
    {
        lock (_gate)
        {
            return OAuthHttp;
        }
    }), Time);

    /// <summary>The OAuth client on the <see cref="HttpPurpose.OAuth"/> handler. Called under the lock.</summary>
    private OAuthHttp OAuthHttp => _oauthHttp ??= Own(new OAuthHttp(HttpHandlerFactory.Create(HttpPurpose.OAuth)));

    /// <summary>A new audit writer over the store's audit log, keeping <paramref name="retention"/>. The caller owns
    /// it: dispose it (it writes what is queued) before this root closes the store.</summary>
    public AuditWriter CreateAuditWriter(TimeSpan retention, ILogger logger) => new(Store, retention, Time, logger);

    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            for (var i = _owned.Count - 1; i >= 0; i--)
            {
                _owned[i].Dispose();
            }

            _owned.Clear();
        }

        await Store.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Remembers <paramref name="value"/> for <see cref="DisposeAsync"/> (only what was built is disposed,
    /// so closing a root that built nothing touches no HTTP type).</summary>
    private T Own<T>(T value)
        where T : IDisposable
    {
        _owned.Add(value);
        return value;
    }
}
