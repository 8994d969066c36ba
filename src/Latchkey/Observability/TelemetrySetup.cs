using System.Collections;
using Latchkey.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Latchkey.Observability;

/// <summary>Which signals the gateway sends over OTLP: decided by the standard <c>OTEL_*</c> variables alone.</summary>
/// <param name="Traces">Spans go to <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>, else <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>.</param>
/// <param name="Metrics">Metrics go to <c>OTEL_EXPORTER_OTLP_METRICS_ENDPOINT</c>, else <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>.</param>
internal readonly record struct OtlpExport(bool Traces, bool Metrics)
{
    /// <summary>
    /// A signal is exported when its endpoint (or the common one) is set and its exporter is not <c>none</c>
    /// (<c>OTEL_TRACES_EXPORTER</c>, <c>OTEL_METRICS_EXPORTER</c>); nothing is when <c>OTEL_SDK_DISABLED=true</c>.
    /// With no endpoint set nothing leaves the gateway: the OTLP exporter's own default (localhost:4317) is never used.
    /// </summary>
    public static OtlpExport From(IReadOnlyDictionary<string, string> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        string? Get(string name) => variables.TryGetValue(name, out var value) && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;
        if (string.Equals(Get("OTEL_SDK_DISABLED"), "true", StringComparison.OrdinalIgnoreCase))
        {
            return default;
        }

        var common = Get("OTEL_EXPORTER_OTLP_ENDPOINT") is not null;
        return new OtlpExport(
            Traces: (common || Get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") is not null) && !string.Equals(Get("OTEL_TRACES_EXPORTER"), "none", StringComparison.OrdinalIgnoreCase),
            Metrics: (common || Get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") is not null) && !string.Equals(Get("OTEL_METRICS_EXPORTER"), "none", StringComparison.OrdinalIgnoreCase));
    }
}

/// <summary>
/// The OpenTelemetry SDK in the gateway: a meter provider over Latchkey's meter (<see cref="LatchkeyTelemetry"/>)
/// that always feeds the Prometheus scrape (<see cref="MetricsEndpoint"/>) and, when <see cref="OtlpExport"/> says
/// so, an OTLP exporter; a tracer provider over Latchkey's activity source only when spans are exported (without
/// one, no span is ever started).
/// </summary>
/// <remarks>
/// The SDK reads its settings (endpoint, protocol, headers, timeouts, export interval, sampler, resource) from the
/// standard <c>OTEL_*</c> variables; the gateway's configuration is otherwise empty, so exactly those are copied into
/// it, and no other variable can change the host. ASP.NET Core's own meters and spans are not collected: Latchkey's
/// instruments name what an operator needs, and leave the URL (which may hold anything a caller sent) out.
/// </remarks>
internal static class TelemetrySetup
{
    /// <summary>The service name when <c>OTEL_SERVICE_NAME</c> does not give one.</summary>
    public const string ServiceName = "latchkey";

    /// <summary>This process's <c>OTEL_*</c> variables.</summary>
    public static IReadOnlyDictionary<string, string> OtelVariables()
    {
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            if (entry.Key is string name && name.StartsWith("OTEL_", StringComparison.Ordinal) && entry.Value is string value)
            {
                found[name] = value;
            }
        }

        return found;
    }

    /// <summary>Adds the SDK to <paramref name="builder"/>'s services; returns what is exported over OTLP.</summary>
    public static OtlpExport Add(WebApplicationBuilder builder, IReadOnlyDictionary<string, string> variables, string version)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(variables);
        var export = OtlpExport.From(variables);
        builder.Configuration.AddInMemoryCollection(variables.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value)));
        var telemetry = builder.Services.AddOpenTelemetry();
        if (!variables.ContainsKey("OTEL_SERVICE_NAME"))
        {
            telemetry.ConfigureResource(resource => resource.AddService(ServiceName, serviceVersion: version));
        }

        telemetry.WithMetrics(metrics =>
        {
            metrics.AddMeter(LatchkeyTelemetry.Name).AddPrometheusExporter();
            if (export.Metrics)
            {
                metrics.AddOtlpExporter();
            }
        });
        if (export.Traces)
        {
            telemetry.WithTracing(tracing => tracing.AddSource(LatchkeyTelemetry.Name).AddOtlpExporter());
        }

        return export;
    }
}
