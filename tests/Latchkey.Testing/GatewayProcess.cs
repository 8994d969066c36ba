using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Latchkey.Testing;

/// <summary>
/// A real <c>latchkey serve</c> process on a free loopback port over its own home folder, with everything it
/// logs captured (so tests can prove no secret reaches the log). Killed with its process tree on dispose.
/// </summary>
internal sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log;
    private readonly TempHome _home;
    private readonly bool _ownsHome;
    private IReadOnlyDictionary<string, string> _environment = new Dictionary<string, string>();

    private GatewayProcess(Process process, TempHome home, bool ownsHome, string url, StringBuilder log)
    {
        _process = process;
        _log = log;
        _home = home;
        _ownsHome = ownsHome;
        Url = url;
        Http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false, MaxConnectionsPerServer = 256 })
        {
            BaseAddress = new Uri(url),
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public string Url { get; }

    public string HomePath => _home.Path;

    public TempHome Home => _home;

    public HttpClient Http { get; }

    public int Pid => _process.Id;

    /// <summary>Everything the gateway wrote to standard output and error so far.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static Task<GatewayProcess> StartAsync(TempHome? home = null, params string[] extraArgs) =>
        StartAsync(home, new Dictionary<string, string>(), extraArgs);

    /// <summary>Starts a gateway with extra environment variables (e.g. <c>LATCHKEY_STORE</c>), which <see cref="Cli"/> then uses too.</summary>
    public static Task<GatewayProcess> StartAsync(TempHome? home, IReadOnlyDictionary<string, string> environment, params string[] extraArgs) =>
        StartListeningAsync("127.0.0.1:0", home, environment, extraArgs);

    /// <summary>
    /// Starts a gateway on <paramref name="listen"/> (<c>HOST:PORT</c>; a non-loopback address needs
    /// <c>--allow-remote</c> in <paramref name="extraArgs"/>).
    /// </summary>
    public static async Task<GatewayProcess> StartListeningAsync(string listen, TempHome? home, IReadOnlyDictionary<string, string> environment, params string[] extraArgs)
    {
        var ownsHome = home is null;
        home ??= new TempHome();
        var info = Processes.StartInfo(Processes.LatchkeyExe, home.Path, ["serve", "--listen", listen, .. extraArgs]);
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        var process = Process.Start(info)!;
        process.StandardInput.Close();
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("latchkey serve exited before it was ready:\n" + log));
                return;
            }

            lock (log)
            {
                log.AppendLine(e.Data);
            }

            if (ReadyLine().Match(e.Data) is { Success: true } m)
            {
                ready.TrySetResult(m.Groups[1].Value);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (log)
                {
                    log.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string url;
        try
        {
            url = await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return new GatewayProcess(process, home, ownsHome, url, log) { _environment = environment };
    }

    /// <summary>Runs <c>latchkey ARGS</c> on this gateway's home folder.</summary>
    public Task<Processes.Result> Cli(string? stdin, params string[] args) => Processes.Latchkey(HomePath, stdin, _environment, args);

    /// <summary>Stops the gateway with SIGTERM (a clean shutdown) and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        NativeSignal.Terminate(_process.Id);
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Kills the gateway with SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Adds an API-key credential through the CLI (the secret on standard input).</summary>
    public async Task AddApiKeyAsync(string name, string upstream, string secret, params string[] options)
    {
        var result = await Cli(secret + "\n", ["add", name, "--upstream", upstream, .. options]);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    /// <summary>Creates a client key through the CLI and returns the value it printed once.</summary>
    public async Task<string> CreateKeyAsync(string name, params string[] credentials)
    {
        var result = await Cli(null, ["keys", "create", name, .. credentials.SelectMany(c => new[] { "--credential", c })]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout.Trim();
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        if (_ownsHome)
        {
            _home.Dispose();
        }
    }

    [GeneratedRegex(@"^Latchkey gateway on (http://[^\s]+)")]
    private static partial Regex ReadyLine();
}
