using System.Net;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// Cookies through the gateway. An upstream's <c>Set-Cookie</c> is not kept in a jar and replayed on later requests
/// (one agent's session would then ride on another agent's requests), and an agent's own <c>Cookie</c> never goes
/// upstream (next to the injected credential, it could carry a session of the agent's choosing).
/// </summary>
public sealed class UpstreamCookieTests
{
    [Fact]
    public async Task Forward_UpstreamSetsACookie_NotReplayedOnTheNextRequestAndTheAgentsCookieNeverGoesUp()
    {
        await using var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = context =>
            {
                context.Response.Headers.SetCookie = "session=upstream-session-" + Guid.NewGuid().ToString("N") + "; Path=/; HttpOnly";
                context.Response.StatusCode = 200;
                return Task.CompletedTask;
            },
        });
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("cookies", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var first = await gateway.CreateKeyAsync("first-agent", "cookies");
        var second = await gateway.CreateKeyAsync("second-agent", "cookies");

        using var set = await SendAsync(gateway, first, null);
        using var next = await SendAsync(gateway, second, null);
        using var own = await SendAsync(gateway, first, "agent-session=chosen-by-the-agent");

        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        Assert.StartsWith("session=upstream-session-", set.Headers.GetValues("Set-Cookie").Single(), StringComparison.Ordinal); // passed to the agent, as sent
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        var seen = upstream.Requests.ToList();
        Assert.Equal(3, seen.Count);
        Assert.All(seen, r => Assert.False(r.Headers.ContainsKey("Cookie"), $"the upstream received Cookie: {r.Headers.GetValueOrDefault("Cookie")}"));
    }

    private static Task<HttpResponseMessage> SendAsync(GatewayProcess gateway, string key, string? cookie)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/c/cookies/v1/models");
        request.Headers.Add("x-api-key", key);
        if (cookie is not null)
        {
            request.Headers.Add("Cookie", cookie);
        }

        return gateway.Http.SendAsync(request);
    }
}
