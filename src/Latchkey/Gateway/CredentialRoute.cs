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
        if (await agents.CheckTargetAsync(context, "c", name).ConfigureAwait(false) is not { } pathAndQuery)
        {
            return;
        }

        // The key first: nothing about the credential is read (no store read, no refresh) for a caller without one.
        if (!await agents.AuthorizeAsync(context, name).ConfigureAwait(false))
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
        var facts = AuditFacts.Of(context);
        facts?.Metered = true;
        using var outcome = await exchange.SendAsync(context, credential, pathAndQuery, body).ConfigureAwait(false);
        await exchange.WriteAsync(context, outcome, [new("latchkey-credential", name)]).ConfigureAwait(false);

        // The request's model only when the answer reported usage without naming one (rare), and only from a kept
        // body: a streamed one is gone.
        if (facts is { Usage: not null, AnswerModel: null } && body.IsPresent && !body.IsStreamed
            && ModelRouterRoute.FindModel(body.Content) is (ModelRouterRoute.ModelLookup.Found, var model, _, _))
        {
            facts.RequestModel = model;
        }
    }
}
