using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// The floor under the gateway's numbers: the same platform pieces Latchkey uses (Kestrel on the empty host, the
// SocketsHttpHandler from Latchkey's own HttpHandlerFactory (the forwarding one), a pooled 64 KiB buffer, a flush after every read) and
// nothing else: no client key, no credential lookup, no audit, no diagnostics, no routing. It forwards every
// request to UPSTREAM + path, adding the header named by the first line of standard input ("name: value"), so the
// secret never sits in argv. What Latchkey costs above this is Latchkey's; what this costs above nginx is the
// platform's.
//   floor-proxy --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT   (header line on stdin)
//   prints "listening on http://..." when ready.
var listen = IPEndPoint.Parse(Arg("--listen", "127.0.0.1:0"));
var upstream = Arg("--upstream", "").TrimEnd('/');
var header = Console.In.ReadLine() ?? string.Empty;
var colon = header.IndexOf(':', StringComparison.Ordinal);
var (injectName, injectValue) = colon > 0 ? (header[..colon].Trim(), header[(colon + 1)..].Trim()) : ("", "");

var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [] });
builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
{
    k.AddServerHeader = false;
    k.Limits.MaxRequestBodySize = null;
    k.Listen(listen);
});
builder.Services.AddRoutingCore();
var app = builder.Build();
var invoker = new HttpMessageInvoker(Latchkey.Http.HttpHandlerFactory.Create(Latchkey.Http.HttpPurpose.Forwarding)); // the gateway's own tuned handler
string[] skipped = ["Host", "Connection", "Keep-Alive", "Transfer-Encoding", "x-api-key", "Authorization"];

app.Run(async context =>
{
    using var request = new HttpRequestMessage(HttpMethod.Parse(context.Request.Method), upstream + context.Request.Path + context.Request.QueryString);
    if (context.Request.ContentLength is > 0 || context.Request.Headers.TransferEncoding.Count > 0)
    {
        request.Content = new StreamContent(context.Request.Body);
    }

    foreach (var (name, value) in context.Request.Headers)
    {
        if (Array.Exists(skipped, s => s.Equals(name, StringComparison.OrdinalIgnoreCase)))
        {
            continue;
        }

        if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)value))
        {
            request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)value);
        }
    }

    request.Headers.TryAddWithoutValidation(injectName, injectValue);
    using var response = await invoker.SendAsync(request, context.RequestAborted);
    context.Response.StatusCode = (int)response.StatusCode;
    foreach (var (name, values) in response.Headers.NonValidated)
    {
        if (!name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && !name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
        {
            context.Response.Headers[name] = values.ToArray();
        }
    }

    foreach (var (name, values) in response.Content.Headers.NonValidated)
    {
        context.Response.Headers[name] = values.ToArray();
    }

    var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
    try
    {
        await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
        int read;
        while ((read = await body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }
    finally
    {
        ArrayPool<byte>.Shared.Return(buffer);
    }
});

await app.StartAsync();
Console.WriteLine($"listening on {app.Urls.First()}");
await app.WaitForShutdownAsync();

string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
