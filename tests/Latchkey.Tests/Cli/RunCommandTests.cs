using System.Diagnostics;
using System.Text.Json.Nodes;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Cli;

/// <summary>
/// One home folder with an Anthropic-shaped and an OpenAI-shaped credential on one simulated upstream, shared by
/// the <see cref="RunCommandTests"/>: the first <c>latchkey run</c> starts the background gateway, the others reuse it
/// (starting one per test would only cost suite time). The gateway is killed at the end.
/// </summary>
public sealed class RunCommandFixture : IAsyncLifetime
{
    public TempHome Home { get; } = new();

    internal SimulatedUpstream Upstream { get; } = new();

    public string Secret { get; } = "sk-ant-api03-" + Guid.NewGuid().ToString("N");

    public string OpenAiSecret { get; } = "sk-proj-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        await Upstream.StartAsync();
        var added = await Processes.Latchkey(Home.Path, Secret + "\n", "add", "anthropic", "--upstream", Upstream.Url, "--header", "x-api-key", "--format", "{secret}", "--extra-header", "anthropic-version: 2023-06-01");
        Assert.True(added.ExitCode == 0, added.ToString());
        added = await Processes.Latchkey(Home.Path, OpenAiSecret + "\n", "add", "openai", "--upstream", Upstream.Url + "/v1");
        Assert.True(added.ExitCode == 0, added.ToString());
    }

    public async Task DisposeAsync()
    {
        var info = Path.Combine(Home.Path, "gateway.json");
        if (File.Exists(info) && JsonNode.Parse(await File.ReadAllTextAsync(info))?["pid"]?.GetValue<int>() is { } pid)
        {
            try
            {
                using var gateway = Process.GetProcessById(pid);
                gateway.Kill();
                await gateway.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (ArgumentException)
            {
            }
        }

        await Upstream.DisposeAsync();
        Home.Dispose();
    }
}

/// <summary>
/// <c>latchkey run -- CMD</c> and <c>latchkey env</c> end to end: a real agent-like HTTP client (curl) reaches the
/// simulated upstream through a gateway that <c>run</c> started by itself, holding only a client key.
/// </summary>
public sealed class RunCommandTests : IClassFixture<RunCommandFixture>
{
    private readonly TempHome _home;
    private readonly SimulatedUpstream _upstream;
    private readonly string _secret;
    private readonly string _openAiSecret;

    public RunCommandTests(RunCommandFixture fixture)
    {
        _home = fixture.Home;
        _upstream = fixture.Upstream;
        _secret = fixture.Secret;
        _openAiSecret = fixture.OpenAiSecret;
        _upstream.Requests.Clear(); // each test sees only its own requests
    }

    [Fact]
    public async Task Run_CurlAsTheAgent_ReachesUpstreamWithTheInjectedKeyOnly()
    {
        // The agent: curl, with the key read from the environment into a header file (never into argv).
        const string agent = """
            printf 'x-api-key: %s\n' "$ANTHROPIC_AUTH_TOKEN" > "$AGENT_DIR/headers"
            curl -sS --fail-with-body -X POST "$ANTHROPIC_BASE_URL/v1/messages" -H @"$AGENT_DIR/headers" \
              -H 'content-type: application/json' -d '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
            """;

        var result = await Latchkey(null, "run", "--credential", "anthropic", "--", "sh", "-c", agent);

        Assert.True(result.ExitCode == 0, result.ToString());
        var message = JsonNode.Parse(result.Stdout)!;
        Assert.Equal("message", (string?)message["type"]);
        var seen = _upstream.Requests.Single();
        Assert.Equal(_secret, seen.Credential);
        Assert.Equal("2023-06-01", seen.Headers["anthropic-version"]);
        var clientKey = (await File.ReadAllTextAsync(Path.Combine(_home.Root, "headers"))).Trim()["x-api-key: ".Length..];
        Assert.StartsWith("lk_", clientKey, StringComparison.Ordinal);
        Assert.DoesNotContain(seen.Headers.Values, v => v.Contains(clientKey, StringComparison.Ordinal));

        // The run's key is revoked when the agent exits.
        var keys = await Latchkey(null, "keys", "list", "--json");
        Assert.DoesNotContain("run-", keys.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_AgentEnvironment_HasTheGatewayVariablesAndNoRealKey()
    {
        var result = await Latchkey(null, "run", "--credential", "anthropic", "--", "sh", "-c", "env | sort");

        Assert.True(result.ExitCode == 0, result.ToString());
        var env = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        Assert.StartsWith("http://127.0.0.1:", env["ANTHROPIC_BASE_URL"], StringComparison.Ordinal);
        Assert.EndsWith("/c/anthropic", env["ANTHROPIC_BASE_URL"], StringComparison.Ordinal);
        Assert.StartsWith("lk_", env["ANTHROPIC_AUTH_TOKEN"], StringComparison.Ordinal);
        Assert.Equal(env["ANTHROPIC_AUTH_TOKEN"], env["LATCHKEY_KEY"]);
        Assert.True(env.ContainsKey("LATCHKEY_URL"));
        Assert.DoesNotContain(_secret, result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_AgentExitCode_IsLatchkeysExitCode()
    {
        var result = await Latchkey(null, "run", "--credential", "anthropic", "--", "sh", "-c", "exit 7");

        Assert.Equal(7, result.ExitCode);
    }

    [Fact]
    public async Task Run_UnknownCommand_Exits127WithTheReason()
    {
        var result = await Latchkey(null, "run", "--credential", "anthropic", "--", "no-such-agent-binary");

        Assert.Equal(127, result.ExitCode);
        Assert.Contains("no-such-agent-binary", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_UnknownCredential_Exits4()
    {
        var result = await Latchkey(null, "run", "--credential", "nope", "--", "true");

        Assert.Equal(4, result.ExitCode);
    }

    [Fact]
    public async Task Env_Credential_PrintsExportLinesThatWork()
    {
        var result = await Latchkey(null, "env", "--credential", "anthropic", "--expires", "1h");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("export ANTHROPIC_BASE_URL='http://127.0.0.1:", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("export LATCHKEY_KEY='lk_", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("keys revoke", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(_secret, result.All, StringComparison.Ordinal);

        // eval'd by a shell, the lines point curl at the gateway with a key that works.
        await File.WriteAllTextAsync(Path.Combine(_home.Root, "env.sh"), result.Stdout);
        const string agent = """
            . "$AGENT_DIR/env.sh"
            printf 'x-api-key: %s\n' "$ANTHROPIC_AUTH_TOKEN" > "$AGENT_DIR/headers"
            curl -sS --fail-with-body -X POST "$ANTHROPIC_BASE_URL/v1/messages" -H @"$AGENT_DIR/headers" \
              -H 'content-type: application/json' -d '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
            """;
        var curl = await Run(null, "sh", "-c", agent);
        Assert.True(curl.ExitCode == 0, curl.ToString());
        Assert.Equal("message", (string?)JsonNode.Parse(curl.Stdout)!["type"]);
        Assert.Equal(_secret, _upstream.Requests.Single().Credential);
    }

    [Fact]
    public async Task Run_OpenAiShapedCredential_SetsTheOpenAiVariablesAndCurlReachesUpstream()
    {
        const string agent = """
            env | grep -E '^(OPENAI|ANTHROPIC|LATCHKEY)_' | sort > "$AGENT_DIR/env"
            printf 'Authorization: Bearer %s\n' "$OPENAI_API_KEY" > "$AGENT_DIR/headers"
            curl -sS --fail-with-body -X POST "$OPENAI_BASE_URL/chat/completions" -H @"$AGENT_DIR/headers" \
              -H 'content-type: application/json' -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
            """;

        var result = await Latchkey(null, "run", "--credential", "openai", "--", "sh", "-c", agent);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("chat.completion", (string?)JsonNode.Parse(result.Stdout)!["object"]);
        var env = (await File.ReadAllLinesAsync(Path.Combine(_home.Root, "env"))).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        // The credential's upstream already ends in /v1, so the SDK's base URL is the route itself.
        Assert.Matches("^http://127\\.0\\.0\\.1:[0-9]+/c/openai$", env["OPENAI_BASE_URL"]);
        Assert.StartsWith("lk_", env["OPENAI_API_KEY"], StringComparison.Ordinal);
        Assert.Equal(env["OPENAI_API_KEY"], env["LATCHKEY_KEY"]);
        Assert.Equal(env["OPENAI_BASE_URL"], env["LATCHKEY_URL"] + "/c/openai");
        Assert.False(env.ContainsKey("ANTHROPIC_BASE_URL"));
        var seen = _upstream.Requests.Single();
        Assert.Equal("/v1/chat/completions", seen.PathAndQuery);
        Assert.Equal(_openAiSecret, seen.Credential);
        Assert.DoesNotContain(seen.Headers.Values, v => v.Contains(env["OPENAI_API_KEY"], StringComparison.Ordinal));
    }

    [Fact]
    public async Task Run_BackgroundGateway_IsDetachedAndHoldsNoDescriptorOfRunsOutput()
    {
        // The reader of run's output sees end-of-file when run exits (Latchkey() reads to the end), while the
        // gateway run started keeps serving: it is in its own session and holds none of run's descriptors.
        var result = await Latchkey(null, "run", "--credential", "anthropic", "--", "true");

        Assert.True(result.ExitCode == 0, result.ToString());
        var pid = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_home.Path, "gateway.json")))!["pid"]!.GetValue<int>();
        var stat = await File.ReadAllTextAsync($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[3]); // session id: its own session
        Assert.Equal("/dev/null", ReadLink($"/proc/{pid}/fd/0"));
        Assert.Equal(Path.Combine(_home.Path, "gateway.log"), ReadLink($"/proc/{pid}/fd/1"));
        Assert.Equal(Path.Combine(_home.Path, "gateway.log"), ReadLink($"/proc/{pid}/fd/2"));
        var mine = Directory.GetFiles("/proc/self/fd").Select(ReadLink).Where(l => l.StartsWith("pipe:", StringComparison.Ordinal)).ToHashSet();
        var shared = Directory.GetFiles($"/proc/{pid}/fd").Select(ReadLink).Where(mine.Contains).ToList();
        Assert.Empty(shared);
        Assert.Contains("Latchkey gateway on", await File.ReadAllTextAsync(Path.Combine(_home.Path, "gateway.log")), StringComparison.Ordinal);

        // A second run reuses it.
        var again = await Latchkey(null, "run", "--credential", "anthropic", "--", "true");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(pid, JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_home.Path, "gateway.json")))!["pid"]!.GetValue<int>());
    }

    [Fact]
    public async Task Run_SigtermToLatchkey_ReachesTheAgentAndItsExitCodeIsReturned_SigintDoesNotStopLatchkey()
    {
        const string agent = """trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done""";
        var info = StartInfo("run", "--credential", "anthropic", "--", "sh", "-c", agent);
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var first = await process.StandardOutput.ReadLineAsync(timeout.Token);
        Assert.True(first == "ready", $"first line: {first}; stderr: {(process.HasExited ? await stderr : "(running)")}");

        // SIGINT (Ctrl-C reaches the agent through the terminal's process group) does not make latchkey leave it.
        Assert.Equal(0, global::Latchkey.Local.NativeMethods.Kill(process.Id, 2));
        await RealTime.ForAsync(TimeSpan.FromMilliseconds(500)); // time for latchkey (another process) to (wrongly) stop
        Assert.False(process.HasExited);

        Assert.Equal(0, global::Latchkey.Local.NativeMethods.Kill(process.Id, 15));
        var rest = await process.StandardOutput.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);

        Assert.Contains("got-term", rest, StringComparison.Ordinal);
        Assert.True(process.ExitCode == 42, $"exit {process.ExitCode}; stderr: {await stderr}");
    }

    private static string ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget ?? string.Empty;
        }
        catch (IOException)
        {
            return string.Empty; // closed meanwhile
        }
    }

    private System.Diagnostics.ProcessStartInfo StartInfo(params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, _home.Path, args);
        info.Environment["LATCHKEY_LISTEN"] = "127.0.0.1:0"; // many homes test at once: no fixed port
        info.Environment["AGENT_DIR"] = _home.Root;
        info.Environment.Remove("ANTHROPIC_API_KEY");
        info.Environment.Remove("OPENAI_API_KEY");
        return info;
    }

    private Task<Processes.Result> Latchkey(string? stdin, params string[] args) => Run(stdin, [Processes.LatchkeyExe, .. args]);

    /// <summary>Runs <paramref name="argv"/> with the test's environment and waits for it to exit and close its output.</summary>
    private Task<Processes.Result> Run(string? stdin, params string[] argv)
    {
        var info = StartInfo(argv[1..]);
        info.FileName = argv[0];
        return Processes.Run(info, stdin);
    }
}
