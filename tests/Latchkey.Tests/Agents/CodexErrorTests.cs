using System.Collections.Concurrent;
using System.Net;
using Latchkey.Cli;
using Xunit.Abstractions;

namespace Latchkey.Tests.Agents;

/// <summary>
/// What the real Codex prints when the gateway refuses, or an upstream refuses the credential behind it: Latchkey's
/// explanation and the command that fixes it. Codex prints a failed request as <c>ERROR: unexpected status STATUS
/// REASON: MESSAGE, url: ..., request id: ...</c>, MESSAGE being the error body's <c>error.message</c>; the retries it
/// makes by default (five, with backoff) are turned off (<see cref="CodexTests.ExecOptions"/>) so a test answers at once.
/// </summary>
public sealed class CodexErrorTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Run_EveryRefusal_CodexPrintsLatchkeysExplanationAndFix()
    {
        await using var world = await AgentWorld.StartAsync(output, "sk-proj-");
        await world.AddOpenAiAsync();
        await world.Gateway.AddApiKeyAsync("wrong", world.Upstream.Url + "/v1", "sk-proj-" + Guid.NewGuid().ToString("N"));
        var rejected = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        world.Upstream.Behaviour.Accept = k => k == world.Secret || (k.Contains('.', StringComparison.Ordinal) && !rejected.ContainsKey(k)); // the key, or a live access token (a JWT)
        await world.Mcp.Latchkey.LoginAsync("codex-oauth", "--resource", world.Mcp.AuthorizationServer.Resource, "--upstream", world.Upstream.Url + "/v1");
        var record = (await world.Mcp.Latchkey.ReadAsync("codex-oauth"))!;
        rejected[record.Secrets.AccessToken!] = true;

        // No client key at all is not a case an agent started by 'latchkey run' meets: run always sets the key. Started
        // without one (OPENAI_API_KEY unset or empty), Codex never asks the gateway: it stops at "Missing environment
        // variable: `OPENAI_API_KEY`." by itself, which names the variable to set.

        // A client key the gateway never issued, and one it revoked.
        var bogus = await CodexDirectAsync(world, "lk_" + new string('a', 40));
        AssertShows(bogus, "401 Unauthorized", "is not one this gateway issued", "latchkey keys create NAME --credential openai");
        var revokedKey = await world.Gateway.CreateKeyAsync("revoked", "openai");
        Assert.Equal(0, (await world.Gateway.Cli(null, "keys", "revoke", "revoked")).ExitCode);
        var revoked = await CodexDirectAsync(world, revokedKey);
        AssertShows(revoked, "401 Unauthorized", "was revoked", "latchkey keys create NAME --credential openai");

        // The stored key refused by the upstream (OpenAI's "Incorrect API key provided", code invalid_api_key).
        var wrong = await CodexAsync(world, "--credential", "wrong");
        AssertShows(wrong, "401 Unauthorized", "does not accept the API key stored as 'wrong'", "Store a valid key: latchkey add wrong --replace --keep-settings < key.txt");
        Assert.DoesNotContain("Incorrect API key provided", wrong.Stdout + wrong.Stderr, StringComparison.Ordinal);
        await ClaudeCodeErrorTests.FollowStoreKeyFixAsync(world, "wrong");
        var fixedRun = await CodexAsync(world, "--credential", "wrong");
        Assert.True(fixedRun.ExitCode == 0, fixedRun.ToString());
        Assert.Equal("Bearer " + world.Secret, world.Upstream.Requests.Last().Headers["Authorization"]);

        // An OAuth grant: its access token refused, and its refresh token already spent elsewhere (the refresh fails) ...
        using (var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }))
        using (var spent = await http.PostAsync(new Uri(record.Metadata.TokenEndpoint!), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = record.Secrets.RefreshToken!, ["client_id"] = record.Metadata.Client!.ClientId, ["resource"] = world.Mcp.AuthorizationServer.Resource,
        })))
        {
            Assert.Equal(HttpStatusCode.OK, spent.StatusCode);
        }

        var refreshFailed = await CodexAsync(world, "--credential", "codex-oauth", "--api", "openai");
        AssertShows(refreshFailed, "401 Unauthorized", "refreshing it failed", "latchkey login codex-oauth");

        // ... after which the credential needs sign-in, and the gateway says so itself.
        var needsSignIn = await CodexAsync(world, "--credential", "codex-oauth", "--api", "openai");
        AssertShows(needsSignIn, "401 Unauthorized", "codex-oauth", "latchkey login codex-oauth");

        Assert.All(world.Upstream.Requests, r => Assert.DoesNotContain("lk_", string.Join('\n', r.Headers.Values), StringComparison.Ordinal));
    }

    /// <summary>Codex failed and printed the status, <paramref name="explanation"/> and <paramref name="fix"/> in its error line.</summary>
    private static void AssertShows(RealAgent.Run run, string status, string explanation, string fix)
    {
        Assert.False(run.TimedOut, run.ToString());
        Assert.NotEqual(0, run.ExitCode);
        var line = (run.Stdout + run.Stderr).Split('\n').FirstOrDefault(l => l.Contains($"unexpected status {status}: ", StringComparison.Ordinal));
        Assert.True(line is not null, $"no 'unexpected status {status}' line: {run}");
        Assert.Contains(explanation, line, StringComparison.Ordinal);
        Assert.Contains(fix, line, StringComparison.Ordinal);
    }

    private async Task<RealAgent.Run> CodexAsync(AgentWorld world, params string[] runOptions)
    {
        using var codex = RealAgent.Codex();
        var run = await world.RunWithOptionsAsync(codex, runOptions, ["exec", .. CodexTests.ExecOptions, "hello"]);
        output.WriteLine($"codex via latchkey run {string.Join(' ', runOptions)}: {run}");
        return run;
    }

    /// <summary>Codex pointed at the gateway by hand (the provider <c>latchkey run</c> defines), with <paramref name="key"/>
    /// as its key (in its environment).</summary>
    private async Task<RealAgent.Run> CodexDirectAsync(AgentWorld world, string? key)
    {
        using var codex = RealAgent.Codex();
        if (key is not null)
        {
            codex.Environment["OPENAI_API_KEY"] = key;
        }

        var plan = new RunCommand.Plan("openai", "/c/openai", "openai", UpstreamHasV1: true);
        var run = await codex.RunAsync(codex.Executable, RunCommand.AgentArguments([codex.Executable, "exec", .. CodexTests.ExecOptions, "hello"], plan, world.Gateway.Url)[1..]);
        output.WriteLine($"codex with a client key by hand: {run}");
        return run;
    }
}
