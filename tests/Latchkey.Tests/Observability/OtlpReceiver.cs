using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Latchkey.Tests.Observability;

/// <summary>
/// An OTLP/HTTP receiver (what a collector listens with): every POST is kept, path and body (protobuf), and answered
/// 200 with an empty export response. Kestrel on loopback: a free port, or a given one (the exporter's default 4318).
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app, string url)
    {
        _app = app;
        Url = url;
    }

    /// <summary>The base URL to give as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>.</summary>
    public string Url { get; }

    /// <summary>Every request received: its path (<c>/v1/traces</c>, <c>/v1/metrics</c>, ...) and body.</summary>
    public ConcurrentQueue<(string Path, byte[] Body)> Received { get; } = new();

    /// <summary>Listens on 127.0.0.1 on a free port, or, with <paramref name="port"/>, on localhost (both loopback addresses) there.</summary>
    public static async Task<OtlpReceiver> StartAsync(int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ApplicationName = "otlp-receiver" });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            if (port == 0)
            {
                k.Listen(IPAddress.Loopback, 0);
            }
            else
            {
                k.ListenLocalhost(port);
            }
        });
        var app = builder.Build();
        OtlpReceiver? receiver = null;
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            receiver!.Received.Enqueue((context.Request.Path.Value ?? string.Empty, body.ToArray()));
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
        });
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        receiver = new OtlpReceiver(app, url.Replace("[::1]", "127.0.0.1", StringComparison.Ordinal));
        return receiver;
    }

    /// <summary>The bodies received at <paramref name="path"/>, as one Latin-1 text (protobuf keeps strings as their
    /// UTF-8 bytes, so an ASCII string sent is found as is).</summary>
    public string Text(string path) =>
        string.Concat(Received.Where(r => r.Path == path).Select(r => System.Text.Encoding.Latin1.GetString(r.Body)));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
