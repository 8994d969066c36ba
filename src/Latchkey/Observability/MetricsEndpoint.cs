using System.Net;
using Latchkey.Gateway;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Observability;

/// <summary>
/// <c>/metrics</c>: the Prometheus scrape of every metric Latchkey records (<see cref="Telemetry.LatchkeyTelemetry"/>),
/// written by OpenTelemetry's Prometheus exporter behind this class's guard.
/// </summary>
/// <remarks>
/// <para><b>Who may read it.</b> Without a metrics key (<see cref="GatewayOptions.MetricsKeyDigest"/>): only this
/// machine: a loopback peer or the owner's Unix socket, and only with a <c>Host</c> that names this machine (a web
/// page that rebinds its own name to 127.0.0.1 gets nothing). Everyone else gets 403. With a metrics key: only a
/// request carrying it (<c>Authorization: Bearer KEY</c>, compared in constant time), from anywhere, loopback included
/// (a TLS proxy on the same host makes every caller look local); 401 otherwise.</para>
/// <para><b>What it shows.</b> Names (credentials, client keys, routers), reason and status codes, counts and
/// durations: never a secret, a client key or a body. Still, it tells who uses which credential how much, so it is
/// guarded like the dashboard. Refusals are logged under the gateway's budget (<see cref="RefusedRequestLog"/>).</para>
/// <para><b>Spelling.</b> Routing ignores case, and the guard sits in the endpoint's own pipeline, so every spelling
/// of the path that reaches the exporter passes the guard first.</para>
/// </remarks>
internal sealed class MetricsEndpoint(GatewayOptions options, TimeProvider time, ILogger<MetricsEndpoint> log) : IDisposable
{
    public const string Path = "/metrics";

    private readonly RefusedRequestLog _refusedLog = new(log, time);

    /// <summary>Maps <see cref="Path"/>: the guard, then the exporter.</summary>
    public void Map(WebApplication app) =>
        app.MapPrometheusScrapingEndpoint(Path, meterProvider: null, configureBranchedPipeline: branch => branch.Use(GuardAsync), optionsName: null);

    public void Dispose() => _refusedLog.Dispose();

    private Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        context.Response.Headers.CacheControl = "no-store";
        if (options.MetricsKeyDigest is { } digest)
        {
            var presented = Bearer(context.Request.Headers.Authorization.ToString());
            if (presented is null)
            {
                return RefuseAsync(context, 401, "metrics_key_missing",
                    "This gateway's /metrics needs its metrics key: send it as 'Authorization: Bearer KEY'.",
                    "Give the scraper the file passed to 'latchkey serve --metrics-key-file' (Prometheus: authorization: { credentials_file: FILE }).");
            }

            if (!MetricsKey.Matches(digest, presented))
            {
                return RefuseAsync(context, 401, "metrics_key_invalid",
                    "The key sent for /metrics is not this gateway's metrics key.",
                    "Send the key in the file passed to 'latchkey serve --metrics-key-file'.");
            }

            return next(context);
        }

        var remote = context.Connection.RemoteIpAddress;
        if (remote is not null && !IPAddress.IsLoopback(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote))
        {
            return RefuseAsync(context, 403, "metrics_not_local",
                "This gateway answers /metrics only on this machine (127.0.0.1), since it has no metrics key.",
                $"To scrape it from elsewhere, start it with 'latchkey serve --metrics-key-file FILE' (or {MetricsKey.FileVariable}) and send 'Authorization: Bearer KEY'.");
        }

        if (!IsLocalHost(context.Request.Host.Host))
        {
            return RefuseAsync(context, 403, "metrics_host_refused",
                "/metrics answers only under this machine's own address (127.0.0.1, localhost or [::1]), not under another host name.",
                "Scrape http://127.0.0.1:PORT/metrics.");
        }

        return next(context);
    }

    private Task RefuseAsync(HttpContext context, int status, string code, string message, string fix)
    {
        _refusedLog.Refused(context, Path, code);
        if (status == 401)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"latchkey-metrics\"";
        }

        return GatewayErrors.WriteAsync(context, status, code, message, fix);
    }

    /// <summary>The token of an <c>Authorization: Bearer TOKEN</c> value, or null.</summary>
    private static string? Bearer(string authorization)
    {
        const string Scheme = "Bearer ";
        return authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) && authorization.Length > Scheme.Length
            ? authorization[Scheme.Length..].Trim()
            : null;
    }

    /// <summary>A <c>Host</c> that names this machine: <c>localhost</c> or a loopback address.</summary>
    private static bool IsLocalHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host.AsSpan().Trim("[]"), out var address) && IPAddress.IsLoopback(address));
}
