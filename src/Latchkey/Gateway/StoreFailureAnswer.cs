using Latchkey.Store;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Gateway;

/// <summary>
/// Middleware: a request that fails because the store failed (PostgreSQL restarting or unreachable, SQLite
/// locked too long) gets a 503 <c>store_unavailable</c> with <c>retry-after</c>, instead of an empty 500. The store
/// reconnects by itself; the next request after it answers again works.
/// </summary>
/// <remarks>
/// The answer says only that the store is unavailable: it may go to a caller that presented no key at all, and the
/// store's own message names the database's host, user and database (or the SQLite file's path). That message,
/// with the store's reason code, goes to the gateway's log instead, and <c>latchkey status</c> on the gateway's
/// host shows the same failure when it opens the store.
/// </remarks>
internal sealed partial class StoreFailureAnswer(ILogger<StoreFailureAnswer> log)
{
    /// <summary>The reason code every store failure is answered with.</summary>
    public const string Code = "store_unavailable";

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (StoreException ex) when (!context.Response.HasStarted)
        {
            StoreFailed(log, context.Request.Path.Value ?? string.Empty, ex.Code, ex.Message);
            context.Response.Clear();
            context.Response.Headers.RetryAfter = ex.Retryable ? "2" : "30";
            await GatewayErrors.WriteAsync(context, 503, Code, "The gateway's credential store is unavailable right now.",
                ex.Retryable
                    ? "Retry in a few seconds; the gateway reconnects by itself."
                    : "Retry later; the gateway's owner finds the cause in its log and with 'latchkey status' on its host.").ConfigureAwait(false);
        }
    }

    [LoggerMessage(40, LogLevel.Warning, "The store failed during a request for {Path}: {Code}: {Detail}")]
    private static partial void StoreFailed(ILogger logger, string path, string code, string detail);
}
