using System.Collections.Concurrent;
using System.Net;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// What the real Claude Code shows when the gateway refuses, or an upstream refuses the credential behind it: Latchkey's
/// explanation and the command that fixes it (in the error body's <c>error.message</c>, which Claude Code prints as
/// <c>API Error: STATUS MESSAGE</c>), never its own "Not logged in · Please run /login". <c>CLAUDE_CODE_MAX_RETRIES=0</c>
/// (<see cref="RealAgent.Claude"/>) makes it answer at once.
/// </summary>
public sealed class ClaudeCodeErrorTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Run_EveryRefusal_ClaudeCodePrintsLatchkeysExplanationAndFix()
    {
        await using var world = await AgentWorld.StartAsync(output);
        await world.AddAnthropicAsync();
        await world.Gateway.AddApiKeyAsync("wrong", world.Upstream.Url, "sk-ant-api03-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}", "--extra-header", "anthropic-version: 2023-06-01");
        await world.Gateway.AddApiKeyAsync("restricted", world.Upstream.Url, world.Secret, "--header", "x-api-key", "--format", "{secret}", "--extra-header", "sim-scenario: restricted");
        var rejected = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        world.Upstream.Behaviour.Accept = k => k == world.Secret || (k.Contains('.', StringComparison.Ordinal) && !rejected.ContainsKey(k)); // the key, or a live access token (a JWT)
        await world.Mcp.Latchkey.LoginAsync("claude-oauth", "--resource", world.Mcp.AuthorizationServer.Resource, "--upstream", world.Upstream.Url);
        var record = (await world.Mcp.Latchkey.ReadAsync("claude-oauth"))!;
        rejected[record.Secrets.AccessToken!] = true;

        // No client key at all is not a case an agent started by 'latchkey run' meets: run always sets the key. Started
        // without one, Claude Code never asks the gateway: it says "Not logged in · Please run /login" by itself.
        // The gateway's own answer to a request without a key (client_key_missing) is covered in the gateway tests.

        // A client key the gateway never issued, and one it revoked.
        var bogus = await ClaudeDirectAsync(world, "lk_" + new string('a', 40));
        AssertShows(bogus, 401, "is not one this gateway issued", "latchkey keys create NAME --credential anthropic");
        var revokedKey = await world.Gateway.CreateKeyAsync("revoked", "anthropic");
        Assert.Equal(0, (await world.Gateway.Cli(null, "keys", "revoke", "revoked")).ExitCode);
        var revoked = await ClaudeDirectAsync(world, revokedKey);
        AssertShows(revoked, 401, "was revoked", "latchkey keys create NAME --credential anthropic");

        // The stored key refused by the upstream ("invalid x-api-key"), and a credential the provider restricts.
        var wrong = await ClaudeAsync(world, "--credential", "wrong");
        AssertShows(wrong, 401, "The upstream refused the key stored as 'wrong'", "Store a valid key: latchkey add wrong --replace --keep-settings < key.txt");
        await FollowStoreKeyFixAsync(world, "wrong");
        var fixedRun = (await ClaudeAsync(world, "--credential", "wrong")).LastJson();
        Assert.False(fixedRun.GetProperty("is_error").GetBoolean(), fixedRun.ToString());
        var sent = world.Upstream.Requests.Last();
        Assert.Equal(world.Secret, sent.Headers["x-api-key"]); // still in x-api-key, with its anthropic-version
        Assert.Equal("2023-06-01", sent.Headers["anthropic-version"]);
        var restricted = await ClaudeAsync(world, "--credential", "restricted");
        AssertShows(restricted, 400, "restricts 'restricted' to its own first-party client", "latchkey add restricted-api --upstream");

        // An OAuth grant: its access token refused, and its refresh token already spent elsewhere (the refresh fails) ...
        using (var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }))
        using (var spent = await http.PostAsync(new Uri(record.Metadata.TokenEndpoint!), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = record.Secrets.RefreshToken!, ["client_id"] = record.Metadata.Client!.ClientId, ["resource"] = world.Mcp.AuthorizationServer.Resource,
        })))
        {
            Assert.Equal(HttpStatusCode.OK, spent.StatusCode);
        }

        var refreshFailed = await ClaudeAsync(world, "--credential", "claude-oauth", "--api", "anthropic");
        AssertShows(refreshFailed, 401, "refreshing it failed", "latchkey login claude-oauth");

        // ... after which the credential needs sign-in, and the gateway says so itself.
        var needsSignIn = await ClaudeAsync(world, "--credential", "claude-oauth", "--api", "anthropic");
        AssertShows(needsSignIn, 401, "claude-oauth", "latchkey login claude-oauth");

        Assert.All(world.Upstream.Requests, r => Assert.DoesNotContain("lk_", string.Join('\n', r.Headers.Values), StringComparison.Ordinal));
    }

    /// <summary>Does what the fix for a refused stored key says: <c>latchkey add NAME --replace --keep-settings</c>, the valid key on standard input.</summary>
    internal static async Task FollowStoreKeyFixAsync(AgentWorld world, string name)
    {
        var replaced = await world.Gateway.Cli(world.Secret + "\n", "add", name, "--replace", "--keep-settings");
        Assert.True(replaced.ExitCode == 0, replaced.ToString());
    }

    /// <summary>Claude Code failed and printed the status, <paramref name="explanation"/> and <paramref name="fix"/> (not its own sign-in advice).</summary>
    private static void AssertShows(RealAgent.Run run, int status, string explanation, string fix)
    {
        var result = run.LastJson();
        Assert.True(result.GetProperty("is_error").GetBoolean(), run.ToString());
        Assert.Equal(status, result.GetProperty("api_error_status").GetInt32());
        var shown = result.GetProperty("result").GetString()!;
        Assert.Contains($"API Error: {status} ", shown, StringComparison.Ordinal);
        Assert.Contains(explanation, shown, StringComparison.Ordinal);
        Assert.Contains(fix, shown, StringComparison.Ordinal);
        Assert.DoesNotContain("/login", shown, StringComparison.Ordinal);
    }

    private async Task<RealAgent.Run> ClaudeAsync(AgentWorld world, params string[] runOptions)
    {
        using var claude = RealAgent.Claude();
        var run = await world.RunWithOptionsAsync(claude, runOptions, "-p", "hello", "--output-format", "json");
        output.WriteLine($"claude via latchkey run {string.Join(' ', runOptions)}: {run}");
        return run;
    }

    /// <summary>Claude Code pointed at the gateway by hand, with <paramref name="key"/> as its key (in its environment).</summary>
    private async Task<RealAgent.Run> ClaudeDirectAsync(AgentWorld world, string? key)
    {
        using var claude = RealAgent.Claude();
        claude.Environment["ANTHROPIC_BASE_URL"] = $"{world.Gateway.Url}/c/anthropic";
        if (key is not null)
        {
            claude.Environment["ANTHROPIC_AUTH_TOKEN"] = key;
        }

        var run = await claude.RunAsync(claude.Executable, ["-p", "hello", "--output-format", "json"]);
        output.WriteLine($"claude with a client key by hand: {run}");
        return run;
    }
}
