using System.Net;
using Latchkey.Store;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Latchkey.Gateway;

/// <summary>
/// PROTOTYPE, for the side-by-side measurement only (bench/gateway.sh --also): forwards a <c>/c/NAME/...</c>
/// request for an API-key credential through YARP's <see cref="IHttpForwarder"/> when the hidden switch
/// <c>LATCHKEY_PROTOTYPE_YARP=1</c> is set. Same invoker (URL policy included), same skipped headers, same injection.
/// </summary>
internal sealed class YarpPrototype(IHttpForwarder forwarder, HttpMessageInvoker invoker, GatewayOptions options)
{
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("LATCHKEY_PROTOTYPE_YARP") == "1";

    private static readonly HashSet<string> AlwaysSkipped = new(StringComparer.OrdinalIgnoreCase) { "Authorization", "x-api-key", "latchkey-credential", "Cookie" };

    public async Task ForwardAsync(HttpContext context, ResolvedCredential credential, string pathAndQuery)
    {
        var target = Http.AgentRequestRules.UpstreamUri(credential.Record.Metadata.Upstream!, pathAndQuery)!;
        var config = new ForwarderRequestConfig { ActivityTimeout = options.UpstreamTimeout };
        var error = await forwarder.SendAsync(context, "http://unused", invoker, config, new Transformer(credential, target)).ConfigureAwait(false);
        var facts = AuditFacts.Of(context);
        if (facts is not null)
        {
            facts.Credential = credential.Record.Name;
            facts.UpstreamStatus = error == Yarp.ReverseProxy.Forwarder.ForwarderError.None ? context.Response.StatusCode : null;
        }
    }

    private sealed class Transformer(ResolvedCredential credential, Uri target) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
            var metadata = credential.Record.Metadata;
            foreach (var name in AlwaysSkipped)
            {
                proxyRequest.Headers.Remove(name);
            }

            proxyRequest.Headers.Remove(metadata.Injection.Header);
            foreach (var (name, value) in metadata.ExtraHeaders)
            {
                proxyRequest.Headers.Remove(name);
                proxyRequest.Headers.TryAddWithoutValidation(name, value);
            }

            proxyRequest.RequestUri = target;
            Http.UrlPolicyHandler.PermitInsecureHttp(proxyRequest, metadata.AllowInsecureHttp);
            proxyRequest.Headers.TryAddWithoutValidation(metadata.Injection.Header, metadata.Injection.Format.Replace(InjectionRule.SecretPlaceholder, credential.Secret, StringComparison.Ordinal));
        }

        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var copy = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
            var headers = httpContext.Response.Headers;
            foreach (var name in headers.Keys.Where(k => k.StartsWith("latchkey-", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                headers.Remove(name);
            }

            headers["latchkey-credential"] = credential.Record.Name;
            return copy;
        }
    }
}
