using System.Net;
using System.Text.Json;
using Latchkey.Audit;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// The gateway: Kestrel on a loopback port and a Unix socket in the home folder, serving credential routes
/// (<c>/c/NAME/...</c>), model routers (<c>/r/NAME/...</c>) and <c>/healthz</c>. Every agent request needs a
/// client key.
/// </summary>
internal sealed class GatewayServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ILatchkeyStore _store;
    private readonly OAuthHttp _oauthHttp;
    private readonly HttpMessageInvoker _invoker;
    private readonly AuditWriter _audit;
    private readonly PrivateUnixSocket? _socket;

    private GatewayServer(WebApplication app, ILatchkeyStore store, OAuthHttp oauthHttp, HttpMessageInvoker invoker, AuditWriter audit, PrivateUnixSocket? socket)
    {
        _app = app;
        _socket = socket;
        _audit = audit;
        _store = store;
        _oauthHttp = oauthHttp;
        _invoker = invoker;
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
        var store = StoreSelector.Open(options.Store, home, time);
        var oauthHttp = OAuthHttp.CreateDefault();
        var invoker = Forwarder.CreateInvoker();
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

        var services = builder.Services;
        services.AddSingleton(time);
        services.AddSingleton(options);
        services.AddSingleton<ICredentialStore>(store);
        services.AddSingleton<IClientKeyStore>(store);
        services.AddSingleton(new TokenEngine(store, new TokenEndpointClient(new Lazy<OAuthHttp>(oauthHttp), time), time));
        services.AddSingleton(new Forwarder(invoker, options.UpstreamTimeout));
        services.AddSingleton(new RoutesFile(Path.Combine(home.Path, "routes.json"), time));
        services.AddSingleton<ClientKeyAuth>();
        services.AddSingleton<CredentialResolver>();
        services.AddSingleton<AgentRequest>();
        services.AddSingleton<UpstreamExchange>();
        services.AddSingleton<CredentialRoute>();
        services.AddSingleton<ModelRouterRoute>();
        services.AddSingleton<Dashboard.IAuditSource>(new Dashboard.StoreAuditSource(store));

        var app = builder.Build();
        var audit = new AuditWriter(store, options.AuditRetention, time, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Latchkey.Audit"));
        app.Use(new AuditRecorder(audit, time).InvokeAsync);
        app.Use(ActivatorUtilities.CreateInstance<StoreFailureAnswer>(app.Services).InvokeAsync);
        app.Use(AllowedMethods.InvokeAsync);
        var credentialRoute = app.Services.GetRequiredService<CredentialRoute>();
        var routerRoute = app.Services.GetRequiredService<ModelRouterRoute>();
        app.MapGet("/healthz", (HttpContext context) => WriteHealthAsync(context, home, store.Backend, options.ProofKey));
        app.Map("/c/{credential}/{**rest}", credentialRoute.HandleAsync);
        app.Map("/c/{credential}", credentialRoute.HandleAsync);
        app.Map("/r/{router}/{**rest}", routerRoute.HandleAsync);
        Mcp.McpProxyRoute.Map(app);
        Dashboard.DashboardEndpoints.Map(app, store, home);
        app.MapFallback((HttpContext context) => GatewayErrors.WriteAsync(context, 404, "route_not_found",
            $"The gateway serves /c/CREDENTIAL/... and /r/ROUTER/...; '{context.Request.Path}' is neither.",
            "Point the agent's base URL at /c/NAME (for example with 'latchkey run --credential NAME -- AGENT')."));
        return new GatewayServer(app, store, oauthHttp, invoker, audit, socket);
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
        await _app.DisposeAsync().ConfigureAwait(false);
        await _audit.DisposeAsync().ConfigureAwait(false); // no more requests: write what is queued, then close the store
        _invoker.Dispose();
        _oauthHttp.Dispose();
        await _store.DisposeAsync().ConfigureAwait(false);
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
        var body = JsonSerializer.SerializeToUtf8Bytes(new HealthView("ok", typeof(GatewayServer).Assembly.GetName().Version?.ToString(3) ?? "0", backend, Environment.ProcessId, home.Path), GatewayJsonContext.Default.HealthView);
        return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }
}

/// <summary>The <c>/healthz</c> answer.</summary>
internal sealed record HealthView(string Status, string Version, string Store, int Pid, string Home);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(HealthView))]
[System.Text.Json.Serialization.JsonSerializable(typeof(GatewayInfo))]
internal sealed partial class GatewayJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>What a running gateway writes to <c>gateway.json</c> in the home folder (0600), so <c>latchkey run</c>
/// finds it. <paramref name="ProofKey"/> is the key it proves itself with (<see cref="GatewayProof"/>): secret.</summary>
internal sealed record GatewayInfo(string Url, string? Socket, int Pid, DateTimeOffset StartedAt, string? ProofKey)
{
    public override string ToString() => $"GatewayInfo({Url}, {Socket}, pid {Pid}, {StartedAt:u})";
}
