using System.Diagnostics;
using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Ssh;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Another local user squats the port of a gateway that died: <c>kill -9</c> leaves <c>gateway.json</c> behind, and
/// the squatter answers <c>/healthz</c> with exactly the bytes the real gateway answered (home path, pid, version).
/// <c>latchkey run</c>, <c>env</c>, <c>ssh</c> and <c>dashboard</c> must hand it nothing: no client key, no sign-in link, no
/// agent traffic. They either start a gateway of their own elsewhere or fail naming the squatted port.
/// </summary>
public sealed class GatewaySquatTests : IAsyncLifetime
{
    // The agent: curl with the client key read from the environment into a header file (never into argv). It
    // leaves the gateway URL it was given in a file.
    private const string Agent = """
        printf '%s' "$LATCHKEY_URL" > "$AGENT_DIR/url"
        printf 'x-api-key: %s\n' "$ANTHROPIC_AUTH_TOKEN" > "$AGENT_DIR/headers"
        curl -sS -m 10 -o /dev/null -X POST "$ANTHROPIC_BASE_URL/v1/messages" -H @"$AGENT_DIR/headers" \
          -H 'content-type: application/json' -d '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
        """;

    private readonly TempHome _home = new();
    private readonly SimulatedUpstream _upstream = new();
    private readonly string _secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
    private GatewayProcess _gateway = null!;
    private PortSquatter _squatter = null!;
    private int _port;

    public async Task InitializeAsync()
    {
        await _upstream.StartAsync();
        _gateway = await GatewayProcess.StartAsync(_home, "--no-socket"); // latchkey ssh would forward a socket (stale after kill -9) before the port
        await _gateway.AddApiKeyAsync("anthropic", _upstream.Url, _secret, "--header", "x-api-key", "--format", "{secret}");
        var health = await _gateway.Http.GetByteArrayAsync(new Uri("/healthz", UriKind.Relative));
        _port = new Uri(_gateway.Url).Port;

        await _gateway.KillAsync();
        _squatter = new PortSquatter(_port, health);
        Assert.True(File.Exists(Path.Combine(_home.Path, "gateway.json")), "kill -9 should leave gateway.json naming the dead gateway's port");
    }

    public async Task DisposeAsync()
    {
        // A gateway the command under test started in the background (by its pid in gateway.json).
        var info = Path.Combine(_home.Path, "gateway.json");
        if (File.Exists(info) && JsonNode.Parse(await File.ReadAllTextAsync(info))?["pid"]?.GetValue<int>() is { } pid && pid != _gateway.Pid)
        {
            try
            {
                using var started = Process.GetProcessById(pid);
                started.Kill();
                await started.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (ArgumentException)
            {
            }
        }

        await _squatter.DisposeAsync();
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
        _home.Dispose();
    }

    [Fact]
    public async Task Run_DeadGatewaysPortSquattedAndWantedAgain_FailsNamingThePortAndSquatterGetsNothing()
    {
        var result = await LatchkeyAsync(_port, "run", "--credential", "anthropic", "--", "sh", "-c", Agent);

        AssertSquatterGotNothing();
        Assert.True(result.ExitCode != 0, "run must not go on with a gateway that cannot prove it is this home's: " + Redacted(result));
        Assert.Contains($"port {_port}", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("could not prove", result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_home.Root, "headers")), "the agent was started although no gateway of this home runs");
        Assert.Empty(_upstream.Requests);
        var keys = await LatchkeyAsync(0, "keys", "list", "--json");
        Assert.DoesNotContain("run-", keys.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_DeadGatewaysPortSquattedButAnotherPortFree_AgentReachesAFreshGatewayAndSquatterGetsNothing()
    {
        var result = await LatchkeyAsync(0, "run", "--credential", "anthropic", "--", "sh", "-c", Agent);

        AssertSquatterGotNothing();
        Assert.True(result.ExitCode == 0, Redacted(result));
        Assert.Contains("cannot prove it is this home's gateway", result.Stderr, StringComparison.Ordinal);
        var given = await File.ReadAllTextAsync(Path.Combine(_home.Root, "url"));
        Assert.NotEqual(_squatter.Url, given);
        Assert.Equal((string?)JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_home.Path, "gateway.json")))!["url"], given);
        Assert.Equal(_secret, Assert.Single(_upstream.Requests).Credential);
    }

    [Fact]
    public async Task Env_DeadGatewaysPortSquatted_PrintsNoKeyAndSquatterGetsNothing()
    {
        var result = await LatchkeyAsync(_port, "env", "--credential", "anthropic");

        Assert.True(result.ExitCode != 0, "env must not print a key for a gateway that cannot prove it is this home's: " + Redacted(result));
        Assert.DoesNotContain("export", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("lk_", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"port {_port}", result.Stderr, StringComparison.Ordinal);
        AssertSquatterGotNothing();
        var keys = await LatchkeyAsync(0, "keys", "list", "--json");
        Assert.DoesNotContain("env-", keys.Stdout, StringComparison.Ordinal);
    }

    [SkippableSshFact]
    public async Task Ssh_DeadGatewaysPortSquattedAndWantedAgain_NoSessionKeyOrRemoteTrafficReachesTheSquatter()
    {
        await using var server = await SshServer.StartAsync();
        const string remote = """printf 'header = "x-api-key: %s"\n' "$ANTHROPIC_AUTH_TOKEN" | curl -sS -m 10 -K - -o /dev/null -X POST "$ANTHROPIC_BASE_URL/v1/messages" -d '{}'; echo remote-ran""";

        var result = await LatchkeyAsync(_port, "ssh", "--credential", "anthropic", "-F", server.ClientConfig, SshServer.HostAlias, "--", remote);

        AssertSquatterGotNothing();
        Assert.True(result.ExitCode != 0, Redacted(result));
        Assert.DoesNotContain("remote-ran", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"port {_port}", result.Stderr, StringComparison.Ordinal);
        var keys = await LatchkeyAsync(0, "keys", "list", "--json");
        Assert.DoesNotContain("ssh-", keys.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Dashboard_DeadGatewaysPortSquatted_NoSignInLinkGoesToTheSquatter(bool portWantedAgain)
    {
        // The browser: notes the link its page sends it to, then opens it in Chromium, which signs in.
        var browser = StandInBrowser.Write(_home.Root, TimeSpan.Zero, chromium: true);

        var result = await LatchkeyAsync(portWantedAgain ? _port : 0, new Dictionary<string, string> { ["LATCHKEY_BROWSER"] = browser.Template }, "dashboard");

        string[] links = portWantedAgain && !browser.Started ? [] : [(await browser.FollowedAsync()).AbsoluteUri];
        Assert.False(links.Any(l => l.StartsWith(_squatter.Url + "/", StringComparison.Ordinal)), "the dashboard opened its sign-in link on the squatter's port");
        Assert.DoesNotContain(_squatter.Url + "/ui/#token=", result.Stdout + result.Stderr, StringComparison.Ordinal);
        AssertSquatterGotNothing();
        if (portWantedAgain)
        {
            Assert.True(result.ExitCode != 0, Redacted(result));
            Assert.Contains($"port {_port}", result.Stderr, StringComparison.Ordinal);
            Assert.Empty(links);
        }
        else
        {
            Assert.True(result.ExitCode == 0, Redacted(result));
            var fresh = (string)JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_home.Path, "gateway.json")))!["url"]!;
            Assert.StartsWith(fresh + "/ui/#token=", Assert.Single(links), StringComparison.Ordinal);
            Assert.Contains("Signed in.", await browser.FinalPageAsync(), StringComparison.Ordinal);
        }
    }

    /// <summary>The squatter saw health probes only, and none of them carried a client key or anything else. (A
    /// probe's challenge is 43 random characters, which now and then hold <c>lk_</c>: it is set aside first.)</summary>
    private void AssertSquatterGotNothing()
    {
        Assert.All(_squatter.RequestLines, line => Assert.StartsWith("GET /healthz ", line, StringComparison.Ordinal));
        var requests = _squatter.Requests.Select(r => System.Text.RegularExpressions.Regex.Replace(r, "(?m)^Latchkey-Challenge: [A-Za-z0-9_-]{43}\r?$", "Latchkey-Challenge: (random)"));
        Assert.DoesNotContain(requests, r => r.Contains("lk_", StringComparison.Ordinal) || r.Contains("token", StringComparison.OrdinalIgnoreCase));
    }

    private Task<Processes.Result> LatchkeyAsync(int listenPort, params string[] args) => LatchkeyAsync(listenPort, new Dictionary<string, string>(), args);

    /// <summary>Runs latchkey on the home with <c>LATCHKEY_LISTEN</c> at <paramref name="listenPort"/> (0: any free
    /// port), the port a gateway it starts listens on.</summary>
    private Task<Processes.Result> LatchkeyAsync(int listenPort, Dictionary<string, string> environment, params string[] args)
    {
        environment["LATCHKEY_LISTEN"] = $"127.0.0.1:{listenPort}";
        environment["AGENT_DIR"] = _home.Root;
        return Processes.Latchkey(_home.Path, null, environment, args);
    }

    /// <summary>A result for a failure message, with client keys and sign-in tokens cut out.</summary>
    private static string Redacted(Processes.Result result) =>
        System.Text.RegularExpressions.Regex.Replace(result.ToString(), @"(lk_|token=)[A-Za-z0-9_\-]+", "$1***");
}
