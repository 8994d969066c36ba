using System.Net;

namespace Latchkey.Gateway;

/// <summary>How <c>latchkey serve</c> runs. Defaults are the documented ones (docs/gateway.md).</summary>
internal sealed record GatewayOptions
{
    /// <summary>The documented default port on 127.0.0.1.</summary>
    public const int DefaultPort = 7400;

    /// <summary>Overrides the default listen address of <c>latchkey serve</c> (used by tests and by people who want another port).</summary>
    public const string ListenVariable = "LATCHKEY_LISTEN";

    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, DefaultPort);

    /// <summary>The <c>--store</c> value, or null to use <c>LATCHKEY_STORE</c>, else SQLite in the home folder.</summary>
    public string? Store { get; init; }

    /// <summary>The Unix socket path, or null for none.</summary>
    public string? SocketPath { get; init; }

    /// <summary>Set by <c>--allow-remote</c>: listening on a non-loopback address was asked for explicitly.</summary>
    public bool AllowRemote { get; init; }

    /// <summary>How long the gateway waits for an upstream's response headers.</summary>
    public TimeSpan UpstreamTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a body copy, either way, may go without a byte moving before the gateway ends the
    /// exchange (<c>--idle-timeout</c>): an idle upstream or agent, not a slow one.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The largest request body kept in memory so it can be sent again (after a refresh, or to a fallback).</summary>
    public int RetryBodyLimit { get; init; } = 4 * 1024 * 1024;

    /// <summary>The largest request body a model router accepts (it must read the model name out of it).</summary>
    public int RouterBodyLimit { get; init; } = 32 * 1024 * 1024;

    /// <summary>How long a looked-up credential or client key is reused before the store is read again.</summary>
    public TimeSpan CacheTime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long audit entries are kept (<c>--audit-retention</c>, <c>LATCHKEY_AUDIT_RETENTION</c>).</summary>
    public TimeSpan AuditRetention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>The key the gateway proves itself with on <c>/healthz</c> (<see cref="GatewayProof"/>), recorded in
    /// <c>gateway.json</c>; null answers no challenge.</summary>
    public byte[]? ProofKey { get; init; }

    /// <summary>The SHA-256 digest of the metrics key (<c>--metrics-key-file</c>, <c>LATCHKEY_METRICS_KEY_FILE</c>):
    /// with one, <c>/metrics</c> answers only requests that carry the key; without, only this machine.</summary>
    public byte[]? MetricsKeyDigest { get; init; }

    /// <summary>The longest <c>retry-after</c> the router waits out when every target is cooling down.</summary>
    public TimeSpan ShortRetryAfter { get; init; } = TimeSpan.FromSeconds(5);
}
