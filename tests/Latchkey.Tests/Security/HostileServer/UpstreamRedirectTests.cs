using System.Net;
using System.Text;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// An upstream that answers with a redirect to a server of its choosing (here a second server the test listens on).
/// Following it would send the request, with the injected credential and its body, to that server. The gateway
/// never follows a redirect: the other server sees nothing, and the agent gets the redirect as the upstream sent it.
/// </summary>
public sealed class UpstreamRedirectTests
{
    [Theory]
    [InlineData(301)]
    [InlineData(302)]
    [InlineData(303)]
    [InlineData(307)]
    [InlineData(308)]
    public async Task Forward_UpstreamRedirectsElsewhere_NotFollowedTheAgentGetsTheRedirect(int status)
    {
        await using var elsewhere = new SimulatedUpstream();
        await elsewhere.StartAsync();
        var location = elsewhere.Url + "/steal?from=upstream";
        await using var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = context =>
            {
                context.Response.StatusCode = status;
                context.Response.Headers.Location = location;
                return Task.CompletedTask;
            },
        });
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
        await gateway.AddApiKeyAsync("redirecting", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("agent", "redirecting");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/redirecting/v1/messages") { Content = new StringContent("{\"model\":\"m\"}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        using var response = await gateway.Http.SendAsync(request);

        Assert.Equal((HttpStatusCode)status, response.StatusCode);
        Assert.Equal(location, response.Headers.Location?.OriginalString);
        Assert.Equal(secret, Assert.Single(upstream.Requests).Credential);
        Assert.Empty(elsewhere.Requests);
    }
}
