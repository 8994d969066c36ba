using System.Net;
using System.Text.Json;
using Latchkey.Audit;
using Latchkey.Composition;
using Latchkey.Dashboard;
using Latchkey.Gateway;
using Latchkey.Mcp;
using Latchkey.Observability;
using Latchkey.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Latchkey.Hosting;

/// <summary>
/// The gateway: Kestrel on a loopback port and a Unix socket in the home folder, serving credential routes
/// (<c>/c/NAME/...</c>), model routers (<c>/r/NAME/...</c>), the MCP proxy (<c>/mcp/NAME/...</c>), the dashboard
/// (<c>/ui</c>), <c>/healthz</c>, <c>/readyz</c> and <c>/metrics</c>. Every agent request needs a client key.
/// </summary>
/// <remarks>
/// <para><b>Wiring, in one style.</b> The composition root (<see cref="LatchkeyServices"/>) builds the store, the
/// token engine, sign-in and the upstream invoker; they go into the container as the root's instances (the root
/// owns and closes them, after the host). Every part of the gateway is registered by its type and built by the
/// container from those; the audit writer comes from the root's factory, because it needs the host's logging, and
/// the container owns it. After <c>Build()</c> nothing is made: the middleware and the routes are resolved from the
/// container. So the gateway has one token engine, shared by the routes, the MCP proxy and the dashboard.</para>
/// <para><b>A request.</b> <see cref="RequestTelemetry"/> (the request's span and metrics), then
/// <see cref="AuditRecorder"/> (one audit entry per agent request), then
/// <see cref="StoreFailureAnswer"/> (a store outage becomes a bare 503), then <see cref="AllowedMethods"/>, then the
/// route. docs/architecture.md follows one request from Kestrel to the upstream and back, file by file.</para>
/// </remarks>
internal sealed class GatewayServer : IAsyncDisposable
{
    /// <summary>Every part of the gateway the container builds: one instance each, for every request.</summary>
    private static readonly string Version = typeof(GatewayServer).Assembly.GetName().Version?.ToString(3) ?? "0";

    private readonly WebApplication _app;
    private readonly LatchkeyServices _root;
    private readonly PrivateUnixSocket? _socket;

    private GatewayServer(WebApplication app, LatchkeyServices root, PrivateUnixSocket? socket)
    {
        _app = app;
        _root = root;
        _socket = socket;
    }

    /// <summary>The addresses the gateway listens on, known once it has started.</summary>
    public IReadOnlyList<string> Addresses =>
        [.. _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? []];

    public IServiceProvider Services => _app.Services;

    /// <summary>Builds a gateway over the store <see cref="GatewayOptions.Store"/> chooses (by default SQLite in
    /// <paramref name="home"/>); <see cref="StartAsync"/> starts it.</summary>
    public static GatewayServer Create(StoreHome home, GatewayOptions options, TimeProvider time, LogLevel logLevel = LogLevel.Information)
    {
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(options);
        if (!options.AllowRemote && !IPAddress.IsLoopback(options.Listen.Address))
        {
            throw new InvalidOperationException($"{options.Listen} is not a loopback address; listening there needs --allow-remote.");
        }

        var socket = options.SocketPath is { } socketPath ? PrivateUnixSocket.Prepare(socketPath) : null;
        var root = LatchkeyServices.Open(options.Store, home, time);
        // The empty builder: no configuration files (and no watcher on the working folder for them), no default
        // providers; Kestrel, routing and logging are added below, and nothing else is loaded.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [], ApplicationName = "latchkey" });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging();
        builder.Logging.SetMinimumLevel(logLevel);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        builder.Logging.Configure(o => o.ActivityTrackingOptions = Microsoft.Extensions.Logging.ActivityTrackingOptions.None);
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null; // credential routes stream any size; routers enforce their own limit
            // Kestrel's default minimum body rate, stated: a request body must arrive at 240 bytes/s or more after a
            // 5 s grace, so a caller without a key cannot hold a connection open by trickling a body in. An agent
            // whose key has passed may stream at any pace (AgentRequest.AuthorizeAsync lifts it per request).
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));
            kestrel.Listen(options.Listen);
            if (socket is not null)
            {
                kestrel.ListenUnixSocket(socket.StagedPath); // private until StartAsync renames it into place
            }
        });

        TelemetrySetup.Add(builder, TelemetrySetup.OtelVariables(), Version);
        AddServices(builder.Services, root, home, options);
        var app = builder.Build();
        var services = app.Services;
        app.Use(services.GetRequiredService<RequestTelemetry>().InvokeAsync);
        app.Use(services.GetRequiredService<AuditRecorder>().InvokeAsync);
        app.Use(services.GetRequiredService<StoreFailureAnswer>().InvokeAsync);
        app.Use(AllowedMethods.InvokeAsync);
        var credentialRoute = services.GetRequiredService<CredentialRoute>();
        var routerRoute = services.GetRequiredService<ModelRouterRoute>();
        app.MapGet("/healthz", (HttpContext context) => WriteHealthAsync(context, home, root.Store.Backend, options.ProofKey));
        app.MapGet(ReadinessEndpoint.Path, services.GetRequiredService<ReadinessEndpoint>().HandleAsync);
        services.GetRequiredService<MetricsEndpoint>().Map(app);
        app.Map("/c/{credential}/{**rest}", credentialRoute.HandleAsync);
        app.Map("/c/{credential}", credentialRoute.HandleAsync);
        app.Map("/r/{router}/{**rest}", routerRoute.HandleAsync);
        services.GetRequiredService<McpProxyRoute>().Map(app);
        services.GetRequiredService<DashboardEndpoints>().Map(app);
        app.MapFallback((HttpContext context) => GatewayErrors.WriteAsync(context, 404, "route_not_found",
            $"The gateway serves /c/CREDENTIAL/... and /r/ROUTER/...; '{context.Request.Path}' is neither.",
            "Point the agent's base URL at /c/NAME (for example with 'latchkey run --credential NAME -- AGENT')."));
        return new GatewayServer(app, root, socket);
    }

    /// <summary>The gateway's container: the root's services as its instances, every gateway part by its type.</summary>
    private static void AddServices(IServiceCollection services, LatchkeyServices root, StoreHome home, GatewayOptions options)
    {
        // Built and owned by the composition root (closed after the host, by DisposeAsync).
        services.AddSingleton(root.Time);
        services.AddSingleton(home);
        services.AddSingleton(options);
        services.AddSingleton(root.Store);
        services.AddSingleton<ICredentialStore>(root.Store);
        services.AddSingleton<IClientKeyStore>(root.Store);
        services.AddSingleton<IAuditLog>(root.Store);
        services.AddSingleton(root.Engine);
        services.AddSingleton(root.SignIn);
        services.AddSingleton(root.ForwardingInvoker);

        // Made by the root's factory with the host's logging; owned by the container, which disposes it (writing
        // what is queued) when the host stops, before the root closes the store.
        services.AddSingleton(provider => root.CreateAuditWriter(options.AuditRetention, provider.GetRequiredService<ILoggerFactory>().CreateLogger("Latchkey.Audit")));

        // The gateway's parts, built by the container from the above.
        // One generic call per part, so the trimmer and Native AOT see each constructor the container calls.
        services.AddSingleton<RequestTelemetry>();
        services.AddSingleton<AuditRecorder>();
        services.AddSingleton<StoreFailureAnswer>();
        services.AddSingleton<ClientKeyAuth>();
        services.AddSingleton<KeyLimiter>();
        services.AddSingleton<CredentialResolver>();
        services.AddSingleton<AgentRequest>();
        services.AddSingleton<Forwarder>();
        services.AddSingleton<UpstreamExchange>();
        services.AddSingleton<RoutesFile>();
        services.AddSingleton<CredentialRoute>();
        services.AddSingleton<ModelRouterRoute>();
        services.AddSingleton<McpProxyRoute>();
        services.AddSingleton<Reconnects>();
        services.AddSingleton<DashboardEndpoints>();
        services.AddSingleton<MetricsEndpoint>();
        services.AddSingleton<ReadinessEndpoint>();
    }

    public async Task StartAsync(CancellationToken ct)
    {
        await _app.StartAsync(ct).ConfigureAwait(false);
        _socket?.Place(); // 0600 while still in its private folder, then renamed to where clients connect
    }

    /// <summary>Runs until <paramref name="ct"/> is cancelled (Ctrl-C, SIGTERM), then stops gracefully.</summary>
    public Task WaitForShutdownAsync(CancellationToken ct) => _app.WaitForShutdownAsync(ct);

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false); // no more requests; the audit writer writes what is queued
        await _root.DisposeAsync().ConfigureAwait(false); // then the HTTP clients and the store
        _socket?.Dispose();
    }

    /// <summary>The health answer; with a challenge, also the proof that this is the home's own gateway
    /// (<see cref="GatewayProof"/>), bound to the port the request arrived on.</summary>
    private static Task WriteHealthAsync(HttpContext context, StoreHome home, string backend, byte[]? proofKey)
    {
        if (proofKey is not null && GatewayProof.Answer(proofKey, context.Request.Headers[GatewayProof.ChallengeHeader].ToString(), context.Connection.LocalPort) is { } proof)
        {
            context.Response.Headers[GatewayProof.ProofHeader] = proof;
        }

        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentType = "application/json";
        var body = JsonSerializer.SerializeToUtf8Bytes(new HealthView("ok", Version, backend, Environment.ProcessId, home.Path), GatewayJsonContext.Default.HealthView);
        return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }
}
