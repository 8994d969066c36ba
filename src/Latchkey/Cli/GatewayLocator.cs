using System.Diagnostics;
using System.Text.Json;
using Latchkey.Gateway;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// Finds the gateway serving a home folder (<c>gateway.json</c> plus a health check), starts one in the
/// background when there is none, and keeps two from serving the same home (<c>gateway.lock</c>).
/// </summary>
internal static class GatewayLocator
{
    /// <summary>Set for a gateway started in the background: the file its standard output and error were opened on.</summary>
    public const string LogVariable = "LATCHKEY_GATEWAY_LOG";

    /// <summary>Takes the home's gateway lock, or null when another gateway holds it.</summary>
    public static FileStream? TryLockHome(StoreHome home)
    {
        var path = Path.Combine(home.Path, "gateway.lock");
        try
        {
            return new FileStream(path, StoreHome.PrivateFileOptions(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether a live process holds the home's gateway lock (a gateway running or still starting).</summary>
    private static bool HeldByAnother(StoreHome home)
    {
        using var probe = TryLockHome(home);
        return probe is null;
    }

    public static void WriteInfo(StoreHome home, GatewayInfo info)
    {
        var path = Path.Combine(home.Path, "gateway.json");
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, StoreHome.PrivateFileOptions(FileMode.Create, FileAccess.Write)))
        {
            JsonSerializer.Serialize(stream, info, GatewayJsonContext.Default.GatewayInfo);
        }

        File.Move(temp, path, overwrite: true);
    }

    public static GatewayInfo? ReadInfo(StoreHome home)
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(Path.Combine(home.Path, "gateway.json")), GatewayJsonContext.Default.GatewayInfo);
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static void ClearInfo(StoreHome home, int pid)
    {
        if (ReadInfo(home) is { } info && info.Pid == pid)
        {
            File.Delete(Path.Combine(home.Path, "gateway.json"));
        }
    }

    public static string Describe(StoreHome home) => ReadInfo(home) is { } info ? $"pid {info.Pid}, {info.Url}" : "see gateway.json";

    /// <summary>The URL of a healthy gateway serving <paramref name="home"/>, or null.</summary>
    public static async Task<string?> FindHealthyAsync(StoreHome home, CancellationToken ct)
    {
        if (ReadInfo(home) is not { } info)
        {
            return null;
        }

        return await IsHealthyAsync(info.Url, home, ct) ? info.Url : null;
    }

    /// <summary>
    /// A healthy gateway's URL: the running one, or a new <c>latchkey serve</c> started in its own session
    /// (so Ctrl-C in the terminal does not stop it), waited for up to <paramref name="wait"/>.
    /// </summary>
    public static async Task<string> EnsureRunningAsync(StoreHome home, TimeSpan wait, CancellationToken ct, string? store = null)
    {
        if (await FindHealthyAsync(home, ct) is { } running)
        {
            return running;
        }

        var exe = Environment.ProcessPath ?? throw new CliException(ExitCodes.Failure, "Cannot tell where the latchkey executable is, so cannot start a gateway.", "Start one yourself: latchkey serve");
        var log = Path.Combine(home.Path, "gateway.log");
        home.EnsureReady();
        using (new FileStream(log, StoreHome.PrivateFileOptions(FileMode.Append, FileAccess.Write, FileShare.ReadWrite)))
        {
            // created 0600 here; the gateway appends to it
        }

        var environment = new Dictionary<string, string?>(StringComparer.Ordinal) { [LogVariable] = log };
        if (!string.IsNullOrWhiteSpace(store))
        {
            environment[StoreSelector.StoreVariable] = store; // the --store choice, passed on outside the argument list
        }

        Func<bool> exited = Start(exe, ["serve", "--home", home.Path], log, environment);

        var deadline = DateTime.UtcNow + wait; // wall-clock wait for another process; not domain time
        while (DateTime.UtcNow < deadline)
        {
            if (await FindHealthyAsync(home, ct) is { } url)
            {
                return url;
            }

            // The one we started stopped. That is the end only when no other process holds the home: a gateway
            // someone started by hand takes the lock before it answers /healthz, and ours then stops at once
            // ("already running"), so wait for that one instead.
            if (exited() && await FindHealthyAsync(home, ct) is null && !HeldByAnother(home))
            {
                break;
            }

            await Task.Delay(100, ct);
        }

        if (HeldByAnother(home))
        {
            throw new CliException(ExitCodes.Failure, $"A gateway holds the home folder {home.Path} ({Describe(home)}) but did not answer /healthz within {wait.TotalSeconds:0} s.",
                "Look at the terminal or log of that 'latchkey serve'; stop it if it hangs, and try again.");
        }

        var tail = File.Exists(log) ? string.Join(Environment.NewLine + "    ", File.ReadLines(log).TakeLast(5)) : "(no log)";
        throw new CliException(ExitCodes.Failure, $"The gateway did not become healthy within {wait.TotalSeconds:0} s. Its log ({log}) ends with:{Environment.NewLine}    {tail}",
            "Run 'latchkey serve' in a terminal to see what stops it.");
    }

    /// <summary>
    /// Starts the gateway detached: its own session, standard input from /dev/null, output to <paramref name="log"/>,
    /// and none of this process's descriptors (so a reader of this process's output never waits for the gateway).
    /// Returns a check for whether it has exited.
    /// </summary>
    private static Func<bool> Start(string exe, string[] arguments, string log, Dictionary<string, string?> environment)
    {
        if (DetachedProcess.IsSupported)
        {
            try
            {
                var pid = DetachedProcess.Start(exe, arguments, log, environment);
                return () => DetachedProcess.HasExited(pid);
            }
            catch (IOException ex)
            {
                throw new CliException(ExitCodes.Failure, $"Could not start 'latchkey serve': {ex.Message}", "Start it yourself: latchkey serve");
            }
        }

        // Elsewhere: setsid when there is one; output goes to a pipe nobody reads once this process exits.
        var setsid = File.Exists("/usr/bin/setsid") ? "/usr/bin/setsid" : null;
        var start = new ProcessStartInfo(setsid ?? exe) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        if (setsid is not null)
        {
            start.ArgumentList.Add(exe);
        }

        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start) ?? throw new CliException(ExitCodes.Failure, "Could not start 'latchkey serve'.", "Start it yourself: latchkey serve");
        process.StandardInput.Close();
        return () => process.HasExited;
    }

    private static async Task<bool> IsHealthyAsync(string url, StoreHome home, CancellationToken ct)
    {
        using var handler = new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(1) };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            using var response = await http.GetAsync(new Uri(url + "/healthz"), ct);
            if (!response.IsSuccessStatusCode)
            {
                return false;
            }

            var health = JsonSerializer.Deserialize(await response.Content.ReadAsByteArrayAsync(ct), GatewayJsonContext.Default.HealthView);
            return health is not null && string.Equals(Path.GetFullPath(health.Home), home.Path, StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            return false;
        }
    }
}
