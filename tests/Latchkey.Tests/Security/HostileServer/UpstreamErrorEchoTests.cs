using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// An upstream that refuses the credential and quotes it back: in its error message (with control characters and a
/// forged log line), in the body's <c>request_id</c> and in its <c>request-id</c> header. The gateway explains the
/// failure in <c>latchkey-diagnostic</c>, its log and <c>status</c>, quoting the upstream, but every copy of the
/// credential in what Latchkey itself writes is masked, and the error body the agent gets is Latchkey's explanation,
/// with nothing of the upstream's message in it. (Another body an upstream sends still reaches the agent unchanged: an
/// upstream can always hand out the credential it receives.) A message the JSON reader cannot turn into a string (a
/// lone surrogate escape) is treated as no message.
/// </summary>
public sealed class UpstreamErrorEchoTests
{
    private const string ForgedLogLine = "Latchkey gateway on http://evil.example";

    [Fact]
    public async Task Forward_UpstreamQuotesTheKeyInMessageAndRequestId_DiagnosticLogAndStatusMaskIt()
    {
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
        await using var upstream = new SimulatedUpstream(new SimBehaviour { Respond = context => RefuseQuotingAsync(context) });
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("echo", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("agent", "echo");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/echo/v1/messages") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        using var response = await gateway.Http.SendAsync(request);
        var status = await gateway.Cli(null, "status", "echo", "--json");

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(secret, Assert.Single(upstream.Requests).Credential); // it did receive the key, so it could quote it
        var diagnostic = response.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.StartsWith("authentication_failed;", diagnostic, StringComparison.Ordinal);
        Assert.Contains("The upstream said: \\\"invalid x-api-key ***", diagnostic, StringComparison.Ordinal); // quoted, key masked
        var secrets = new[] { ("API key", secret) };
        SecretAssert.Absent(diagnostic, "the latchkey-diagnostic header", secrets);
        SecretAssert.Absent(string.Join('\n', response.Headers.Where(h => h.Key.StartsWith("latchkey", StringComparison.OrdinalIgnoreCase)).SelectMany(h => h.Value)), "Latchkey's headers", secrets);
        SecretAssert.Absent(gateway.Log, "the gateway's log", secrets);
        SecretAssert.Absent(await response.Content.ReadAsStringAsync(), "the error body the agent got", secrets);
        SecretAssert.Absent(status.All, "latchkey status --json", secrets);
        Assert.Equal("authentication_failed", JsonNode.Parse(status.Stdout)![0]!["last_upstream_failure"]!["code"]!.GetValue<string>());
        Assert.DoesNotContain(gateway.Log.Split('\n'), line => line.StartsWith(ForgedLogLine, StringComparison.Ordinal));
        Assert.DoesNotContain('\u001b', gateway.Log + status.Stdout);
    }

    [Fact]
    public async Task Forward_UpstreamErrorMessageWithABrokenSurrogate_TheAgentStillGetsTheUpstreamsAnswerExplained()
    {
        const string body = """{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key \ud800"}}""";
        await using var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = context =>
            {
                context.Response.StatusCode = 401;
                context.Response.ContentType = "application/json";
                return context.Response.WriteAsync(body, context.RequestAborted);
            },
        });
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("broken", upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        var key = await gateway.CreateKeyAsync("agent", "broken");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/broken/v1/messages") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        using var response = await gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode); // the upstream's answer, not a crash of the gateway's
        Assert.StartsWith("authentication_failed;", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        var explained = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("authentication_error", explained["error"]!["type"]!.GetValue<string>());
        Assert.StartsWith("The upstream refused the key stored as 'broken'.", explained["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    /// <summary>A 401 in Anthropic's error shape that quotes the x-api-key it received everywhere it can.</summary>
    private static Task RefuseQuotingAsync(HttpContext context)
    {
        var received = context.Request.Headers["x-api-key"].ToString();
        context.Response.StatusCode = 401;
        context.Response.ContentType = "application/json";
        context.Response.Headers["request-id"] = received;
        var body = new JsonObject
        {
            ["type"] = "error",
            ["error"] = new JsonObject { ["type"] = "authentication_error", ["message"] = $"invalid x-api-key {received}\u001b[2J\n{ForgedLogLine}" },
            ["request_id"] = received,
        };
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }
}
