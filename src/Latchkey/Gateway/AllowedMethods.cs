using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// Middleware: the gateway answers only the methods an API or MCP client uses. Any other method, on every route,
/// gets <c>405 method_not_allowed</c> with an <c>Allow</c> header, and nothing is forwarded.
/// </summary>
/// <remarks>
/// <para><b>Security.</b> <c>TRACE</c> (and <c>TRACK</c>) make a server echo the request it received: forwarded with
/// the injected credential, the echo would hand the real credential to the agent. <c>CONNECT</c> asks for a tunnel,
/// which the gateway does not provide. An allow-list, rather than a list of the known bad ones, also keeps out
/// methods an upstream may give meanings the gateway cannot foresee.</para>
/// <para><b>Method overrides.</b> Many frameworks let a header replace the method (<c>X-HTTP-Method-Override</c>,
/// <c>X-HTTP-Method</c>, <c>X-Method-Override</c>): a <c>POST</c> carrying <c>X-HTTP-Method-Override: TRACE</c> is a
/// <c>TRACE</c> to such an upstream. Each value of those headers (and each comma-separated part of it) must name an
/// allowed method too, or the request gets the same <c>405</c>.</para>
/// </remarks>
internal static class AllowedMethods
{
    /// <summary>The <c>Allow</c> header value: the methods the gateway forwards.</summary>
    public const string Allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

    public static bool IsAllowed(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsPost(method) || HttpMethods.IsPut(method)
        || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method) || HttpMethods.IsOptions(method);

    /// <summary>The headers frameworks read as a replacement for the request's method.</summary>
    public static readonly string[] OverrideHeaders = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"];

    public static Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (!IsAllowed(context.Request.Method))
        {
            return RefuseAsync(context, $"The gateway does not forward {Shown(context.Request.Method)} requests (it forwards {Allow}).");
        }

        if (RefusedOverride(context.Request.Headers) is { } header)
        {
            return RefuseAsync(context, $"The request's {header} header asks the upstream to treat it as another method, which the gateway does not forward (it forwards {Allow}).");
        }

        return next(context);
    }

    /// <summary>The name of a method-override header that names a method outside the allow-list, or null.</summary>
    public static string? RefusedOverride(IHeaderDictionary headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        foreach (var name in OverrideHeaders)
        {
            foreach (var value in headers[name])
            {
                foreach (var method in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    if (!IsAllowed(method))
                    {
                        return name;
                    }
                }
            }
        }

        return null;
    }

    private static Task RefuseAsync(HttpContext context, string message)
    {
        context.Response.Headers.Allow = Allow;
        context.Response.Headers.Connection = "close"; // a body sent with it is not read
        return GatewayErrors.WriteAsync(context, 405, "method_not_allowed", message, "Send the request with one of those methods, and no method-override header naming another.");
    }

    /// <summary>A method as the message shows it: a token of at most 32 characters (Kestrel allows only token characters).</summary>
    private static string Shown(string method) => method.Length <= 32 ? method : method[..32] + "…";
}
