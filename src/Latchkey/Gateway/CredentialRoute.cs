using Latchkey.Store;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// <c>/c/{credential}/{rest}</c>: forwards to the credential's upstream plus <c>{rest}</c> and the query, with the
/// client key swapped for the real credential. The body is streamed; for an OAuth credential a body up to
/// <see cref="GatewayOptions.RetryBodyLimit"/> is kept so the request can be sent again after a refresh.
/// </summary>
internal sealed class CredentialRoute(AgentRequest agents, UpstreamExchange exchange, GatewayOptions options)
{
    public async Task HandleAsync(HttpContext context)
    {
        var name = (string)context.Request.RouteValues["credential"]!;
        var prefix = "/c/" + name;
        if (AgentRequest.UpstreamPath(context, prefix) is not { } pathAndQuery)
        {
            await agents.RefuseAsync(context, 400, "path_invalid", "The request path has dot segments or backslashes, which could leave the upstream's base path.", "Send a normalised path.").ConfigureAwait(false);
            return;
        }

        // The key is checked before anything about the credential is told. Only when the key is in neither
        // Authorization nor x-api-key is the credential looked up, to learn which other header it uses.
        var credentialHeader = ClientKeyAuth.Find(context.Request, null) is null ? await agents.InjectionHeaderAsync(name, context.RequestAborted).ConfigureAwait(false) : null;
        if (!await agents.AuthorizeAsync(context, name, credentialHeader).ConfigureAwait(false))
        {
            return;
        }

        if (await agents.ResolveAsync(context, name).ConfigureAwait(false) is not { } credential)
        {
            return; // not usable: the reason and what to do are written
        }

        using var body = credential.Record.Kind == CredentialKind.OAuth
            ? await RequestBody.ReadAsync(context.Request, options.RetryBodyLimit, context.RequestAborted).ConfigureAwait(false)
            : RequestBody.HasBody(context.Request) ? RequestBody.Streamed : RequestBody.None;
        using var outcome = await exchange.SendAsync(context, credential, pathAndQuery, body).ConfigureAwait(false);
        await UpstreamExchange.WriteAsync(context, outcome, [new("latchkey-credential", name)]).ConfigureAwait(false);
    }
}
