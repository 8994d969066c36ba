using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Latchkey.Telemetry;

/// <summary>
/// Latchkey's one <see cref="Meter"/> and one <see cref="ActivitySource"/> (both named <see cref="Name"/>), and every
/// instrument recorded on them: the gateway's requests, its upstream exchanges, the token engine, the store and the
/// audit writer all record here, and the gateway exports what they record (a Prometheus scrape on <c>/metrics</c>,
/// OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; docs/operations.md lists every name, unit and label).
/// </summary>
/// <remarks>
/// <para><b>Cost.</b> An instrument nobody listens to costs a branch; <c>latchkey token</c> and the commands
/// never listen. In the gateway a measurement is one lookup of its label values, with no allocation: labels are
/// passed as <see cref="TagList"/> or as separate pairs, and status codes as pre-boxed values
/// (<see cref="Status"/>). A span is started only when a trace exporter listens
/// (<see cref="ActivitySource.StartActivity(string, ActivityKind)"/> returns null otherwise).</para>
/// <para><b>No secrets.</b> Labels and span attributes are names (a credential's, a client key's name, a router's),
/// reason codes, status codes and the store's backend: never a secret, a client key, a header value, a path or a
/// body. A name the caller chose is only used once a valid client key allowed it (the gateway's own rule; see
/// <c>Gateway.RequestTelemetry</c>).</para>
/// </remarks>
internal static class LatchkeyTelemetry
{
    /// <summary>The name of the meter and the activity source (what an exporter subscribes to).</summary>
    public const string Name = "Latchkey";

    /// <summary>Label: the route, <c>/c/NAME</c>, <c>/r/NAME</c> or <c>/mcp/NAME</c> (only the prefix before a key allowed it).</summary>
    public const string RouteTag = "route";

    /// <summary>Label: a credential's name.</summary>
    public const string CredentialTag = "credential";

    /// <summary>Label: a client key's name (never the key).</summary>
    public const string ClientKeyTag = "client_key";

    /// <summary>Label: an HTTP status code.</summary>
    public const string StatusTag = "status";

    /// <summary>Label: what a refresh came to, or why a client key was refused.</summary>
    public const string OutcomeTag = "outcome";

    /// <summary>Label: a refusal's reason code.</summary>
    public const string ReasonTag = "reason";

    /// <summary>Label: what a token-engine caller waited for.</summary>
    public const string WaitTag = "wait";

    /// <summary>Label: the store's backend, <c>sqlite</c> or <c>postgresql</c>.</summary>
    public const string BackendTag = "backend";

    /// <summary>Label: a store operation (<c>get</c>, <c>update</c>, <c>verify_key</c>, <c>append</c>, ...).</summary>
    public const string OperationTag = "operation";

    /// <summary>The upper bounds of the upstream histograms, in seconds: a model's answer takes from milliseconds
    /// (an error, a count) to minutes (a long stream).</summary>
    private static readonly double[] UpstreamBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

    /// <summary>The upper bounds of the store histogram, in seconds: SQLite answers in microseconds, a PostgreSQL
    /// across a network in milliseconds.</summary>
    private static readonly double[] StoreBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    private static readonly object[] StatusBoxes = CreateStatusBoxes();

    private static readonly ConcurrentDictionary<string, string> OperationNames = new(StringComparer.Ordinal);

    /// <summary>The audit writers of this process whose queues <see cref="AuditQueueDepth"/> reports.</summary>
    private static readonly ConcurrentDictionary<object, Func<int>> AuditQueues = new(ReferenceEqualityComparer.Instance);

    public static readonly Meter Meter = new(Name);

    public static readonly ActivitySource Source = new(Name);

    /// <summary><c>latchkey.gateway.requests</c>: agent requests answered (<c>/c</c>, <c>/r</c>, <c>/mcp</c>), by
    /// <see cref="RouteTag"/>, <see cref="CredentialTag"/>, <see cref="ClientKeyTag"/> and <see cref="StatusTag"/>.</summary>
    public static readonly Counter<long> Requests = Meter.CreateCounter<long>(
        "latchkey.gateway.requests", "{request}", "Agent requests the gateway answered, by route, credential, client key name and status.");

    /// <summary><c>latchkey.upstream.duration</c>: from sending a request upstream until its answer was passed on
    /// completely (or the exchange failed), by <see cref="CredentialTag"/> and the upstream's <see cref="StatusTag"/>
    /// (0 when none answered).</summary>
    public static readonly Histogram<double> UpstreamDuration = Meter.CreateHistogram(
        "latchkey.upstream.duration", "s", "Time from sending a request upstream until its answer was passed on completely, by credential and upstream status.",
        tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = UpstreamBuckets });

    /// <summary><c>latchkey.upstream.time_to_first_byte</c>: from sending a request upstream until the first byte of
    /// its answer's body arrived (a stream's first event), by <see cref="CredentialTag"/>.</summary>
    public static readonly Histogram<double> UpstreamTimeToFirstByte = Meter.CreateHistogram(
        "latchkey.upstream.time_to_first_byte", "s", "Time from sending a request upstream until the first byte of its answer's body arrived, by credential.",
        tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = UpstreamBuckets });

    /// <summary><c>latchkey.token_engine.refreshes</c>: token requests the token engine sent, by
    /// <see cref="OutcomeTag"/> (<c>success</c>, <c>rejected</c>, <c>failed</c>, <c>lost_response</c>, <c>not_sent</c>).</summary>
    public static readonly Counter<long> Refreshes = Meter.CreateCounter<long>(
        "latchkey.token_engine.refreshes", "{refresh}", "Refreshes the token engine sent to authorization servers, by outcome.");

    /// <summary><c>latchkey.token_engine.waits</c>: callers of the token engine that waited for someone else's work,
    /// by <see cref="WaitTag"/>: <c>flight</c> (joined a read or refresh already under way in this process) or
    /// <c>lease</c> (another process or replica held the credential's refresh lease; one count per pause).</summary>
    public static readonly Counter<long> TokenEngineWaits = Meter.CreateCounter<long>(
        "latchkey.token_engine.waits", "{wait}", "Token engine callers that waited: for a flight under way in this process, or for another process's refresh lease.");

    /// <summary><c>latchkey.store.operation.duration</c>: one store operation, by <see cref="BackendTag"/> and
    /// <see cref="OperationTag"/>.</summary>
    public static readonly Histogram<double> StoreOperationDuration = Meter.CreateHistogram(
        "latchkey.store.operation.duration", "s", "Time one store operation took, by backend and operation.",
        tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = StoreBuckets });

    /// <summary><c>latchkey.client_key.refusals</c>: agent requests refused for their client key (missing, invalid,
    /// revoked, expired, tampered, not allowed, in the URL, over a limit), by <see cref="ReasonTag"/>.</summary>
    public static readonly Counter<long> ClientKeyRefusals = Meter.CreateCounter<long>(
        "latchkey.client_key.refusals", "{request}", "Agent requests refused for their client key, by reason code.");

    /// <summary><c>latchkey.audit.queue.depth</c>: audit entries waiting to be written (see <see cref="ObserveAuditQueue"/>).</summary>
    public static readonly ObservableGauge<int> AuditQueueDepth = Meter.CreateObservableGauge(
        "latchkey.audit.queue.depth", ObserveAuditQueues, "{entry}", "Audit entries queued and not yet written to the store.");

    /// <summary>The label value of an HTTP status: the same boxed value every time, so recording allocates nothing.</summary>
    public static object Status(int status) => (uint)status < (uint)StatusBoxes.Length ? StatusBoxes[status] : status;

    /// <summary>
    /// Records one store operation that started at <paramref name="started"/> (a timestamp of
    /// <paramref name="time"/>). <paramref name="member"/> is the store method's name (<c>VerifyKeyAsync</c>),
    /// recorded as <c>verify_key</c>.
    /// </summary>
    public static void RecordStoreOperation(string backend, string member, TimeProvider time, long started)
    {
        ArgumentNullException.ThrowIfNull(time);
        if (StoreOperationDuration.Enabled)
        {
            StoreOperationDuration.Record(time.GetElapsedTime(started).TotalSeconds, new(BackendTag, backend), new(OperationTag, OperationName(member)));
        }
    }

    /// <summary>
    /// Reports <paramref name="depth"/> (an audit writer's queue) under <c>latchkey.audit.queue.depth</c> until the
    /// returned handle is disposed. With several writers in one process (tests), the gauge reports their sum.
    /// </summary>
    public static IDisposable ObserveAuditQueue(Func<int> depth)
    {
        ArgumentNullException.ThrowIfNull(depth);
        var handle = new Registration();
        AuditQueues[handle] = depth;
        return handle;
    }

    /// <summary><c>VerifyKeyAsync</c> → <c>verify_key</c> (made once per name).</summary>
    internal static string OperationName(string member) => OperationNames.GetOrAdd(member, static m =>
    {
        var name = m.EndsWith("Async", StringComparison.Ordinal) ? m[..^5] : m;
        var text = new System.Text.StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                text.Append('_');
            }

            text.Append(char.ToLowerInvariant(name[i]));
        }

        return text.ToString();
    });

    private static IEnumerable<Measurement<int>> ObserveAuditQueues()
    {
        if (AuditQueues.IsEmpty)
        {
            return [];
        }

        var total = 0;
        foreach (var depth in AuditQueues.Values)
        {
            total += depth();
        }

        return [new Measurement<int>(total)];
    }

    private static object[] CreateStatusBoxes()
    {
        var boxes = new object[600];
        for (var i = 0; i < boxes.Length; i++)
        {
            boxes[i] = i;
        }

        return boxes;
    }

    private sealed class Registration : IDisposable
    {
        public void Dispose() => AuditQueues.TryRemove(this, out _);
    }
}
