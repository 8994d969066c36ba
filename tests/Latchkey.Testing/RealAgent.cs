using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Latchkey.Testing;

/// <summary>
/// The real coding agents pinned in <c>tests/peers</c> (npm <c>@anthropic-ai/claude-code</c>, npm <c>@openai/codex</c>),
/// run headless as OS processes, each in a private folder of its own (<see cref="Root"/>: its <c>HOME</c>,
/// <c>CODEX_HOME</c>, working folder and config files) with an environment that keeps it off the network and
/// deterministic: no telemetry, no update checks, no non-essential traffic, MCP servers connected before the first
/// turn and their tools never deferred behind a tool search, no retries unless a test asks for them. Nothing from
/// the test runner's environment that could point an agent elsewhere (a provider key, a proxy, a base URL) is
/// inherited: the environment starts empty but for <c>PATH</c> and the locale.
/// </summary>
/// <remarks>
/// <para>Every run is bounded by a timeout (the process tree is killed when it passes). Standard input is closed at
/// once (a headless agent must not wait on a terminal).</para>
/// <para>Secrets never go on a command line: a client key reaches the agent through its environment (set by
/// <c>latchkey run</c>) or a config file under <see cref="Root"/> (<see cref="WriteFile"/>), which is deleted with it.</para>
/// </remarks>
internal sealed class RealAgent : IDisposable
{
    /// <summary>How long an agent run may take unless a test says otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    private RealAgent(string kind)
    {
        Kind = kind;
        Root = Directory.CreateTempSubdirectory($"latchkey-{kind}-").FullName;
        Home = Path.Combine(Root, "home");
        WorkingDirectory = Path.Combine(Root, "work");
        Directory.CreateDirectory(Home);
        Directory.CreateDirectory(WorkingDirectory);
        Environment["PATH"] = System.Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        Environment["HOME"] = Home;
        Environment["LANG"] = "C.UTF-8";
        Environment["TERM"] = "dumb";
        Environment["NO_COLOR"] = "1";
        Environment["TMPDIR"] = Root;
    }

    /// <summary><c>claude</c> or <c>codex</c>.</summary>
    public string Kind { get; }

    /// <summary>The agent's private folder (deleted on dispose).</summary>
    public string Root { get; }

    /// <summary>The agent's <c>HOME</c> (and, for Codex, <c>CODEX_HOME</c> is <c>HOME/.codex</c>).</summary>
    public string Home { get; }

    /// <summary>Where the agent runs (an empty folder, not a git repository).</summary>
    public string WorkingDirectory { get; }

    /// <summary>The agent's whole environment; tests add to it (e.g. <c>LATCHKEY_HOME</c>).</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>The agent's executable in <c>tests/peers/node_modules/.bin</c>.</summary>
    public string Executable => PathOf(Kind);

    /// <summary>The executable of <paramref name="kind"/> (<c>claude</c> or <c>codex</c>) in <c>tests/peers</c>.</summary>
    public static string PathOf(string kind) => Path.Combine(Processes.RepoRoot, "tests", "peers", "node_modules", ".bin", kind);

    /// <summary>Claude Code, headless: no telemetry, updater, non-essential traffic or retries; MCP servers connected
    /// before the first turn, their tools listed up front.</summary>
    public static RealAgent Claude()
    {
        var agent = new RealAgent("claude");
        agent.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
        agent.Environment["DISABLE_TELEMETRY"] = "1";
        agent.Environment["DISABLE_AUTOUPDATER"] = "1";
        agent.Environment["DISABLE_ERROR_REPORTING"] = "1";
        agent.Environment["MCP_CONNECTION_NONBLOCKING"] = "false";
        agent.Environment["ENABLE_TOOL_SEARCH"] = "false";
        agent.Environment["CLAUDE_CODE_MAX_RETRIES"] = "0";
        agent.Environment["MCP_TIMEOUT"] = "30000";
        return agent;
    }

    /// <summary>Codex, headless, with a private <c>CODEX_HOME</c> and no update check.</summary>
    public static RealAgent Codex()
    {
        var agent = new RealAgent("codex");
        var codexHome = Path.Combine(agent.Home, ".codex");
        Directory.CreateDirectory(codexHome);
        agent.Environment["CODEX_HOME"] = codexHome;
        agent.Environment["CODEX_DISABLE_UPDATE_CHECK"] = "1";
        agent.Environment["RUST_LOG"] = "error";
        return agent;
    }

    /// <summary>Writes <paramref name="relativePath"/> under <see cref="Root"/> (mode 0600) and returns its full path.</summary>
    public string WriteFile(string relativePath, string content)
    {
        var path = Path.Combine(Root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        return path;
    }

    /// <summary>
    /// Runs <paramref name="program"/> with <paramref name="args"/> in this agent's environment and working folder
    /// and waits for it, at most <paramref name="timeout"/> (<see cref="DefaultTimeout"/>); the process tree is killed
    /// when that passes and the result says so (<see cref="Run.TimedOut"/>). To run the agent through Latchkey, the
    /// program is <c>latchkey</c> and the arguments end with <c>-- </c><see cref="Executable"/><c> ...</c>.
    /// </summary>
    public async Task<Run> RunAsync(string program, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = WorkingDirectory,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment.Clear();
        foreach (var (name, value) in Environment)
        {
            info.Environment[name] = value;
        }

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var timedOut = false;
        using (var cts = new CancellationTokenSource(timeout ?? DefaultTimeout))
        {
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }

        return new Run(process.ExitCode, await stdout, await stderr, clock.Elapsed, timedOut);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>One finished agent run.</summary>
    internal sealed record Run(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, bool TimedOut)
    {
        /// <summary>The last line of standard output that is a JSON object (<c>claude -p --output-format json</c>'s result).</summary>
        public JsonElement LastJson()
        {
            var line = Stdout.Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.StartsWith('{'))
                ?? throw new InvalidOperationException($"no JSON line in the agent's output: {this}");
            using var json = JsonDocument.Parse(line);
            return json.RootElement.Clone();
        }

        public override string ToString() => $"exit {ExitCode}{(TimedOut ? " (timed out)" : string.Empty)} after {Elapsed.TotalSeconds:0.0} s\nstdout: {Stdout}\nstderr: {Stderr}";
    }
}
