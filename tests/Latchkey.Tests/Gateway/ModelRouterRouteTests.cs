using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Gateway;

/// <summary>A gateway with a router over two simulated providers: <c>primary</c> first, then <c>backup</c>.</summary>
public sealed class RouterFixture : IAsyncLifetime
{
    internal SimulatedUpstream Primary { get; } = new(new SimBehaviour { RetryAfterSeconds = 0 });

    internal SimulatedUpstream Backup { get; } = new(new SimBehaviour { RetryAfterSeconds = 0 });

    internal GatewayProcess Gateway { get; private set; } = null!;

    internal string Key { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        await Primary.StartAsync();
        await Backup.StartAsync();
        Gateway = await GatewayProcess.StartAsync(null, "--upstream-timeout", "2s");
        await Gateway.AddApiKeyAsync("primary", Primary.Url, "sk-ant-primary-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        await Gateway.AddApiKeyAsync("backup", Backup.Url, "sk-ant-backup-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        await File.WriteAllTextAsync(Path.Combine(Gateway.HomePath, "routes.json"), """
            {
              // claude-* goes to the primary provider first, then to the backup under its own model name
              "routers": {
                "main": {
                  "routes": [
                    { "model": "claude-*", "targets": [ { "credential": "primary" }, { "credential": "backup", "model": "backup-sonnet" } ] },
                    { "model": "gpt-4o", "targets": [ { "credential": "primary" }, { "credential": "backup" } ] }
                  ]
                }
              }
            }
            """);
        Key = await Gateway.CreateKeyAsync("router-key", "main");
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Primary.DisposeAsync();
        await Backup.DisposeAsync();
    }
}

public sealed class ModelRouterRouteTests(RouterFixture fixture) : IClassFixture<RouterFixture>
{
    [Fact]
    public async Task Route_PrimaryHealthy_ServesFromPrimaryWithTheAgentsModel()
    {
        using var response = await SendAsync("claude-sonnet-4-5", primary: "ok", backup: "ok");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("primary", response.Headers.GetValues("latchkey-credential").Single());
        Assert.Equal("claude-sonnet-4-5", (string?)fixture.Primary.Requests.Last().Json!["model"]);
    }

    [Theory]
    [InlineData("overloaded", "primary=529")]
    [InlineData("server_error", "primary=500")]
    [InlineData("rate_limit", "primary=429")]
    [InlineData("reset", "primary=502")]
    [InlineData("hang", "primary=504")]
    [InlineData("auth_error", "primary=401")]
    public async Task Route_PrimaryFails_FallsBackToBackupWithItsModelName(string scenario, string attempt)
    {
        var before = fixture.Backup.Requests.Count;

        using var response = await SendAsync("claude-sonnet-4-5", primary: scenario, backup: "ok");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("backup", response.Headers.GetValues("latchkey-credential").Single());
        Assert.Equal($"{attempt}, backup=200", response.Headers.GetValues("latchkey-attempts").Single());
        Assert.Equal(before + 1, fixture.Backup.Requests.Count);
        Assert.Equal("backup-sonnet", (string?)fixture.Backup.Requests.Last().Json!["model"]);
        Assert.Equal("backup-sonnet", (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["model"]);
    }

    [Fact]
    public async Task Route_PrimaryAuthFailure_IsRecordedInStatusBeforeMovingOn()
    {
        using var response = await SendAsync("claude-opus-4", primary: "auth_error", backup: "ok");

        Assert.Equal("backup", response.Headers.GetValues("latchkey-credential").Single());
        var status = await fixture.Gateway.Cli(null, "status", "primary", "--json");
        var failure = JsonNode.Parse(status.Stdout)!.AsArray().Single()!["last_upstream_failure"]!;
        Assert.Equal("authentication_failed", (string?)failure["code"]);
        Assert.Contains("primary", fixture.Gateway.Log, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("restricted", "primary=400", "credential_restricted")]
    [InlineData("permission", "primary=403", "permission_denied")]
    [InlineData("oauth_not_supported", "primary=401", "oauth_not_supported")]
    public async Task Route_PrimaryCredentialUnusable_IsRecordedThenFallsBack(string scenario, string attempt, string reason)
    {
        using var response = await SendAsync("claude-sonnet-4-5", primary: scenario, backup: "ok");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"{attempt}, backup=200", response.Headers.GetValues("latchkey-attempts").Single());
        var status = await fixture.Gateway.Cli(null, "status", "primary", "--json");
        Assert.Equal(reason, (string?)JsonNode.Parse(status.Stdout)!.AsArray().Single()!["last_upstream_failure"]!["code"]);
    }

    [Fact]
    public async Task Route_PrimaryRejectsTheRequest_GoesBackToTheAgentWithoutFallback()
    {
        var before = fixture.Backup.Requests.Count;

        using var response = await SendAsync("claude-sonnet-4-5", primary: "bad_request", backup: "ok");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("primary", response.Headers.GetValues("latchkey-credential").Single());
        Assert.Equal("primary=400", response.Headers.GetValues("latchkey-attempts").Single());
        Assert.Contains("messages: Field required", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(before, fixture.Backup.Requests.Count);
    }

    [Fact]
    public async Task Route_EveryTargetFails_ReturnsTheLastAnswerAndEveryAttempt()
    {
        using var response = await SendAsync("claude-sonnet-4-5", primary: "server_error", backup: "overloaded");

        Assert.Equal(529, (int)response.StatusCode);
        Assert.Equal("primary=500, backup=529", response.Headers.GetValues("latchkey-attempts").Single());
        Assert.StartsWith("overloaded;", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Route_ForcedCredentialHeader_UsesOnlyThatTarget()
    {
        using var response = await SendAsync("claude-sonnet-4-5", primary: "ok", backup: "ok", force: "backup");

        Assert.Equal("backup", response.Headers.GetValues("latchkey-credential").Single());
        Assert.Equal("backup=200", response.Headers.GetValues("latchkey-attempts").Single());
    }

    [Fact]
    public async Task Route_OpenAiChatCompletions_RoutesByModel()
    {
        fixture.Primary.Behaviour.Scenario = "ok";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/r/main/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", fixture.Key);

        using var response = await fixture.Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("chat.completion", (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["object"]);
    }

    [Fact]
    public async Task Route_UnroutedModel_Returns400NamingThePatterns()
    {
        using var response = await SendAsync("llama-3", primary: "ok", backup: "ok");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("model_not_routed", text, StringComparison.Ordinal);
        Assert.Contains("claude-*", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Route_KeyForAnotherRouter_IsRefused()
    {
        var other = await fixture.Gateway.CreateKeyAsync("other-router-key", "primary");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/r/main/v1/messages")
        {
            Content = new StringContent("""{"model":"claude-sonnet-4-5","messages":[]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-api-key", other);

        using var response = await fixture.Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    private async Task<HttpResponseMessage> SendAsync(string model, string primary, string backup, string? force = null)
    {
        fixture.Primary.Behaviour.Scenario = primary;
        fixture.Backup.Behaviour.Scenario = backup;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/r/main/v1/messages")
        {
            Content = new StringContent($$"""{"model":"{{model}}","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-api-key", fixture.Key);
        if (force is not null)
        {
            request.Headers.Add("latchkey-credential", force);
        }

        var response = await fixture.Gateway.Http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }
}
