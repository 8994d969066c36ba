using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// A hostile MCP server on Kestrel (127.0.0.1, a free port) speaking the legacy HTTP+SSE transport: <c>GET /sse</c>
/// answers with the event stream <see cref="Stream"/> writes, and every other request is recorded (a POST that
/// reaches it carries the token Latchkey sent). Endless output stops once the client hangs up, after
/// <see cref="MaxBytes"/>, or when <see cref="StopWhen"/> says so; <see cref="Answer"/> makes it answer other
/// requests (the streamable HTTP transport's POSTs) as a test says (so a test run against broken code cannot take
/// the machine's memory with it).
/// </summary>
internal sealed class HostileMcpServer : IAsyncDisposable
{
    private WebApplication? _app;

    /// <summary>What <c>GET /sse</c> writes: given the response, returns when done.</summary>
    public Func<HostileMcpServer, HttpResponse, CancellationToken, Task> Stream { get; set; } = (_, _, _) => Task.CompletedTask;

    /// <summary>The most bytes an endless write sends.</summary>
    public long MaxBytes { get; set; } = 1L << 30;

    /// <summary>Checked between chunks of an endless write; true stops it.</summary>
    public Func<bool> StopWhen { get; set; } = () => false;

    /// <summary>How many bytes the last endless write handed to Kestrel (which also takes, and drops, writes for a
    /// client that already hung up, so this says little about what the client read).</summary>
    public long Sent { get; private set; }

    /// <summary>Requests other than <c>GET /sse</c>: method, path and whether they carried a bearer token.</summary>
    public ConcurrentQueue<(string Method, string Path, bool Bearer)> Others { get; } = new();

    /// <summary>How requests other than <c>GET /sse</c> are answered, after they are recorded (default: 202, nothing).</summary>
    public Func<HttpContext, Task>? Answer { get; set; }

    public string Url { get; private set; } = string.Empty;

    public static async Task<HostileMcpServer> StartAsync()
    {
        var server = new HostileMcpServer();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ApplicationName = "hostile-mcp" });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        server._app = builder.Build();
        server._app.Run(server.HandleAsync);
        await server._app.StartAsync();
        server.Url = server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        return server;
    }

    /// <summary>Writes <paramref name="text"/> and flushes.</summary>
    public static async Task WriteAsync(HttpResponse response, string text, CancellationToken ct)
    {
        await response.Body.WriteAsync(Encoding.UTF8.GetBytes(text), ct);
        await response.Body.FlushAsync(ct);
    }

    /// <summary>Writes <paramref name="fill"/> bytes, 64 KiB at a time, with no line end, until the client hangs up or a limit is hit.</summary>
    public async Task WriteEndlessAsync(HttpResponse response, byte fill, CancellationToken ct)
    {
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, fill);
        Sent = 0;
        try
        {
            // Kestrel discards writes after the client hung up without always failing them: watch the token too.
            while (Sent < MaxBytes && !StopWhen() && !ct.IsCancellationRequested)
            {
                await response.Body.WriteAsync(chunk, ct);
                Sent += chunk.Length;
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            // the client hung up: that is what a bounded reader does
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _app.StopAsync(stop.Token);
            await _app.DisposeAsync();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        if (HttpMethods.IsGet(context.Request.Method) && context.Request.Path == "/sse")
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            await Stream(this, context.Response, context.RequestAborted);
            return;
        }

        Others.Enqueue((context.Request.Method, context.Request.Path.Value ?? string.Empty, context.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.Ordinal)));
        if (Answer is { } answer)
        {
            await answer(context);
            return;
        }

        context.Response.StatusCode = 202;
    }
}
