using System.Diagnostics;
using System.Text.Json;
using Latchkey.Diagnostics;
using Latchkey.Gateway;
using Latchkey.Http;
using Latchkey.Store;

namespace Latchkey.Local;

/// <summary>
/// Finds the gateway serving a home folder (<c>gateway.json</c> plus a health check in which the gateway proves it
/// is this home's own, <see cref="GatewayProof"/>), starts one in the background when there is none, and keeps two
/// from serving the same home (<c>gateway.lock</c>).
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
        File.Delete(temp); // a leftover of a crash: created anew below, so its mode is certainly 0600
        using (var stream = new FileStream(temp, StoreHome.PrivateFileOptions(FileMode.CreateNew, FileAccess.Write, FileShare.None)))
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

    /// <summary>
    /// The gateway recorded in <c>gateway.json</c> when it answers <c>/healthz</c> at the recorded address and proves
    /// it is this home's own (<see cref="GatewayProof"/>); else null. Nothing else is sent to the address first.
    /// </summary>
    public static async Task<GatewayInfo?> FindHealthyAsync(StoreHome home, CancellationToken ct)
    {
        if (ReadInfo(home) is not { } info)
        {
            return null;
        }

        return await ProbeAsync(info, home, ct) == Probe.Proven ? info : null;
    }

    /// <summary>
    /// This home's gateway, proven (<see cref="FindHealthyAsync"/>): the running one, or a new <c>latchkey serve</c>
    /// started in its own session (so Ctrl-C in the terminal does not stop it), waited for up to
    /// <paramref name="wait"/>. Something that answers at the recorded address without proving itself gets nothing:
    /// a new gateway is started where <c>latchkey serve</c> listens, and when that address is the one taken, the
    /// command fails naming it.
    /// </summary>
    public static async Task<GatewayInfo> EnsureRunningAsync(StoreHome home, TimeSpan wait, CancellationToken ct, string? store = null, TextWriter? warnings = null)
    {
        string? impostor = null;
        if (ReadInfo(home) is { } recorded)
        {
            switch (await ProbeAsync(recorded, home, ct))
            {
                case Probe.Proven:
                    return recorded;
                case Probe.Unproven:
                    impostor = recorded.Url;
                    warnings?.WriteLine($"warning: {recorded.Url}, where gateway.json says this home's gateway listens, answers but cannot prove it is this home's gateway; nothing is sent to it. Starting a gateway of this home's own.");
                    break;
            }
        }

        var exe = Environment.ProcessPath ?? throw new ActionableException("Cannot tell where the latchkey executable is, so cannot start a gateway.", "Start one yourself: latchkey serve");
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
            if (await FindHealthyAsync(home, ct) is { } proven)
            {
                return proven;
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
            throw new ActionableException($"A gateway holds the home folder {home.Path} ({Describe(home)}) but did not answer /healthz with proof that it is this home's gateway within {wait.TotalSeconds:0} s.",
                "Look at the terminal or log of that 'latchkey serve' (one from an older Latchkey cannot prove itself: stop it and try again); stop it if it hangs, and try again.");
        }

        string Tail(int lines) => File.Exists(log) ? string.Join(Environment.NewLine + "    ", File.ReadLines(log).TakeLast(lines)) : "(no log)";
        if (impostor is not null && ReadInfo(home) is { } still && still.Url == impostor)
        {
            var port = new Uri(impostor).Port;
            var tail = Tail(2); // the gateway's own sentence and fix
            throw new ActionableException(
                $"Something that is not this home's gateway listens on {impostor} (port {port}), where gateway.json says the gateway was (pid {still.Pid}, now gone). It answered /healthz but could not prove it is this home's gateway, so nothing was sent to it: another program, perhaps another user's, took the port after the gateway stopped. A new gateway did not start; its log ({log}) ends with:{Environment.NewLine}    {tail}",
                $"See who holds the port: ss -ltnp 'sport = :{port}'. Stop that program, or run the gateway on another port: latchkey serve --listen 127.0.0.1:PORT (or set {GatewayOptions.ListenVariable}=127.0.0.1:PORT), and update agents configured with port {port}.");
        }

        throw new ActionableException($"The gateway did not become healthy within {wait.TotalSeconds:0} s. Its log ({log}) ends with:{Environment.NewLine}    {Tail(5)}",
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
                throw new ActionableException($"Could not start 'latchkey serve': {ex.Message}", "Start it yourself: latchkey serve");
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

        var process = Process.Start(start) ?? throw new ActionableException("Could not start 'latchkey serve'.", "Start it yourself: latchkey serve");
        process.StandardInput.Close();
        return () => process.HasExited;
    }

    /// <summary>What answered at a recorded address.</summary>
    private enum Probe
    {
        /// <summary>Nothing (no listener, or no answer in time).</summary>
        Silent,

        /// <summary>Something answered but did not prove it is this home's gateway.</summary>
        Unproven,

        /// <summary>This home's gateway: it answered a fresh challenge with the key recorded in gateway.json.</summary>
        Proven,
    }

    /// <summary>
    /// Sends <c>GET /healthz</c> with a fresh challenge to the recorded address and checks the answer against the
    /// recorded key (<see cref="GatewayProof"/>) and the home's path. The request carries nothing but the challenge.
    /// </summary>
    private static async Task<Probe> ProbeAsync(GatewayInfo info, StoreHome home, CancellationToken ct)
    {
        if (!Uri.TryCreate(info.Url, UriKind.Absolute, out var url) || url.Scheme != Uri.UriSchemeHttp)
        {
            return Probe.Silent;
        }

        using var http = new HttpClient(HttpHandlerFactory.Create(HttpPurpose.GatewayProbe), disposeHandler: true) { Timeout = TimeSpan.FromSeconds(2) };
        var challenge = GatewayProof.NewChallenge();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(url, "/healthz"));
        request.Headers.TryAddWithoutValidation(GatewayProof.ChallengeHeader, challenge);
        try
        {
            using var response = await http.SendAsync(request, ct);
            var proof = response.Headers.TryGetValues(GatewayProof.ProofHeader, out var values) ? values.FirstOrDefault() : null;
            if (!response.IsSuccessStatusCode || GatewayProof.Decode(info.ProofKey) is not { } key || !GatewayProof.Verify(key, challenge, url.Port, proof))
            {
                return Probe.Unproven;
            }

            var health = JsonSerializer.Deserialize(await response.Content.ReadAsByteArrayAsync(ct), GatewayJsonContext.Default.HealthView);
            return health is not null && string.Equals(Path.GetFullPath(health.Home), home.Path, StringComparison.Ordinal) ? Probe.Proven : Probe.Unproven;
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
        {
            return Probe.Silent;
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            return Probe.Silent;
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException)
        {
            return Probe.Unproven; // something answered, but not as a gateway does
        }
    }
}
