using Latchkey.Store;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// Middleware: a request that fails because the store failed (PostgreSQL restarting or unreachable, SQLite
/// locked too long) gets a 503 with the store's reason code and message and <c>retry-after</c>, instead of an
/// empty 500. The store reconnects by itself; the next request after it answers again works.
/// </summary>
/// <remarks>Store messages name the store's location without a password and never carry secrets.</remarks>
internal sealed partial class StoreFailureAnswer(ILogger<StoreFailureAnswer> log)
{
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (StoreException ex) when (!context.Response.HasStarted)
        {
            StoreFailed(log, context.Request.Path.Value ?? string.Empty, ex.Code);
            context.Response.Clear();
            context.Response.Headers.RetryAfter = ex.Retryable ? "2" : "30";
            await GatewayErrors.WriteAsync(context, 503, ex.Code, ex.Message,
                ex.Retryable ? "Retry in a few seconds; the gateway reconnects by itself." : "See 'latchkey doctor' on this gateway's host.").ConfigureAwait(false);
        }
    }

    [LoggerMessage(40, LogLevel.Warning, "The store failed during a request for {Path}: {Code}")]
    private static partial void StoreFailed(ILogger logger, string path, string code);
}
