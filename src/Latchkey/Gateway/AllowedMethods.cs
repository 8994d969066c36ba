using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// Middleware: the gateway answers only the methods an API or MCP client uses. Any other method, on every route,
/// gets <c>405 method_not_allowed</c> with an <c>Allow</c> header, and nothing is forwarded.
/// </summary>
/// <remarks>
/// <b>Security.</b> <c>TRACE</c> (and <c>TRACK</c>) make a server echo the request it received: forwarded with the
/// injected credential, the echo would hand the real credential to the agent. <c>CONNECT</c> asks for a tunnel,
/// which the gateway does not provide. An allow-list, rather than a list of the known bad ones, also keeps out
/// methods an upstream may give meanings the gateway cannot foresee.
/// </remarks>
internal static class AllowedMethods
{
    /// <summary>The <c>Allow</c> header value: the methods the gateway forwards.</summary>
    public const string Allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

    public static bool IsAllowed(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsPost(method) || HttpMethods.IsPut(method)
        || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method) || HttpMethods.IsOptions(method);

    public static Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (IsAllowed(context.Request.Method))
        {
            return next(context);
        }

        context.Response.Headers.Allow = Allow;
        context.Response.Headers.Connection = "close"; // a body sent with it is not read
        return GatewayErrors.WriteAsync(context, 405, "method_not_allowed",
            $"The gateway does not forward {context.Request.Method} requests (it forwards {Allow}).",
            "Send the request with one of those methods.");
    }
}
