using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Latchkey.Diagnostics;
using Latchkey.Gateway;
using Latchkey.Store;

namespace Latchkey.Local;

/// <summary>
/// <c>latchkey service install|uninstall|status</c>: writes the gateway's service file for this user
/// (<see cref="ServiceDefinition"/>: a systemd user unit, a launchd agent), and asks the service manager
/// (<c>systemctl --user</c>, <c>launchctl</c>) to load and start it. When that manager cannot be reached (no user
/// session bus, a container), the file is still written and the commands to run are said instead.
/// </summary>
/// <param name="platform">The service manager.</param>
/// <param name="getEnvironment">The environment (<c>XDG_CONFIG_HOME</c>, <c>HOME</c>, <c>PATH</c>, …).</param>
/// <param name="output">Where progress and the commands to run go (a person reads them).</param>
internal sealed class ServiceManager(ServicePlatform platform, Func<string, string?> getEnvironment, TextWriter output)
{
    /// <summary>The variables carried into the service from the environment of <c>service install</c>, when set.</summary>
    public static readonly string[] CarriedVariables = [StoreSelector.StoreVariable, StoreSelector.KeyFileVariable, GatewayOptions.ListenVariable, OsKeyStores.SwitchVariable];

    public ServicePlatform Platform { get; } = platform;

    /// <summary>This machine's service manager, or a clear refusal.</summary>
    public static ServicePlatform CurrentPlatform() =>
        OperatingSystem.IsLinux() ? ServicePlatform.Systemd
        : OperatingSystem.IsMacOS() ? ServicePlatform.Launchd
        : throw new ActionableException("latchkey service supports Linux (a systemd user unit) and macOS (a launchd agent) only.",
            "Elsewhere run 'latchkey serve' from the system's own start-up mechanism (on Windows: a scheduled task at log-on).");

    /// <summary>Where the service file goes: <c>$XDG_CONFIG_HOME/systemd/user/latchkey.service</c> or <c>~/Library/LaunchAgents/latchkey.gateway.plist</c>.</summary>
    public string FilePath => Platform switch
    {
        ServicePlatform.Systemd => Path.Combine(ConfigHome(), "systemd", "user", ServiceDefinition.SystemdUnitName),
        _ => Path.Combine(UserHome(), "Library", "LaunchAgents", ServiceDefinition.LaunchdLabel + ".plist"),
    };

    /// <summary>
    /// The executable a service should run: <paramref name="binaryOption"/> (<c>--binary</c>) when given, else the
    /// running one's real path, refused when it lies in a build or temporary folder a rebuild replaces or a reboot
    /// empties.
    /// </summary>
    public static string ResolveBinary(string? binaryOption, string? processPath)
    {
        if (!string.IsNullOrWhiteSpace(binaryOption))
        {
            var given = Path.GetFullPath(binaryOption);
            if (!File.Exists(given))
            {
                throw new ActionableException($"--binary {given}: no such file.", "Give the path of an installed latchkey executable, e.g. --binary ~/.dotnet/tools/latchkey");
            }

            return RefuseWritableByOthers(given);
        }

        if (string.IsNullOrEmpty(processPath))
        {
            throw new ActionableException("Cannot tell where the running latchkey executable is.", "Name it: latchkey service install --binary PATH");
        }

        var real = File.ResolveLinkTarget(processPath, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(processPath);
        var name = Path.GetFileNameWithoutExtension(real);
        if (!string.Equals(name, "latchkey", StringComparison.OrdinalIgnoreCase))
        {
            throw new ActionableException($"This latchkey runs inside '{real}' (e.g. 'dotnet latchkey.dll'), which a service cannot start as latchkey.",
                "Name the installed executable: latchkey service install --binary PATH");
        }

        if (BuildFolderOf(real) is { } folder)
        {
            throw new ActionableException($"The running latchkey is {real}, inside {folder}, which a rebuild replaces or a clean-up removes: a service pointing there would stop working.",
                "Install latchkey (docs/install.md) and run that one's 'latchkey service install', or name a copy that stays: latchkey service install --binary PATH");
        }

        return RefuseWritableByOthers(real);
    }

    /// <summary>
    /// <paramref name="path"/>, unless it or a folder above it may be written by other users (group or others have
    /// write permission, without the sticky bit): whoever can replace the file would run as this user at every log-in.
    /// </summary>
    private static string RefuseWritableByOthers(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return path;
        }

        for (var at = path; !string.IsNullOrEmpty(at); at = Path.GetDirectoryName(at))
        {
            var mode = File.GetUnixFileMode(at);
            var othersWrite = (mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0;
            var sticky = at != path && (mode & UnixFileMode.StickyBit) != 0;
            if (othersWrite && !sticky)
            {
                throw new ActionableException($"{at} may be written by other users ({Convert.ToString((int)mode & 0x1FF, 8)}): whoever replaces {Path.GetFileName(path)} there would run as you at every log-in.",
                    $"Take the write permission away (chmod go-w '{at}'), or install latchkey where only you can write it, then install the service again.");
            }
        }

        return path;
    }

    /// <summary>What makes <paramref name="path"/> a poor place for a service's executable, or null.</summary>
    internal static string? BuildFolderOf(string path)
    {
        var normal = path.Replace('\\', '/');
        // The build folder first: the more telling reason when a clone itself sits in a temporary folder.
        foreach (var marker in new[] { "/bin/Debug/", "/bin/Release/", "/obj/", "/.build/artifacts/" })
        {
            var at = normal.IndexOf(marker, StringComparison.OrdinalIgnoreCase);
            if (at >= 0)
            {
                return $"the build output folder {normal[..(at + marker.Length)]}";
            }
        }

        foreach (var temp in new[] { Path.GetTempPath(), "/tmp/", "/var/tmp/" })
        {
            var prefix = temp.Replace('\\', '/').TrimEnd('/') + "/";
            if (prefix.Length > 1 && normal.StartsWith(prefix, StringComparison.Ordinal))
            {
                return $"the temporary folder {prefix}";
            }
        }

        return null;
    }

    /// <summary>The service for <paramref name="binary"/> and <paramref name="home"/>, with the carried variables that are set.</summary>
    public ServiceDefinition Define(string binary, StoreHome home, string? storeOption = null)
    {
        var carried = CarriedVariables
            .Select(name => (name, value: name == StoreSelector.StoreVariable && !string.IsNullOrWhiteSpace(storeOption) ? storeOption : getEnvironment(name)))
            .Where(v => !string.IsNullOrWhiteSpace(v.value))
            .Select(v => new KeyValuePair<string, string>(v.name, v.name == StoreSelector.KeyFileVariable ? Path.GetFullPath(v.value!) : v.value!))
            .ToList();
        // --store is checked as a command-line store (a password there is refused: argv shows in ps), the variable as one.
        if (carried.Any(v => v.Key == StoreSelector.StoreVariable)
            && StoreSelector.Choose(storeOption, getEnvironment).Postgres is { HasPassword: true })
        {
            throw new ActionableException("The store's connection string carries a password, and the service file would keep it in plain text.",
                $"Leave the password out of {StoreSelector.StoreVariable} (or --store) and put it in ~/.pgpass (0600), then install the service again.");
        }

        return new ServiceDefinition(binary, Path.GetFullPath(home.Path), carried);
    }

    public string Render(ServiceDefinition definition) =>
        Platform == ServicePlatform.Systemd ? definition.RenderSystemdUnit() : definition.RenderLaunchdPlist();

    /// <summary>Writes the service file and loads and starts it. Returns whether the service manager did (else it said what to run).</summary>
    public async Task<bool> InstallAsync(ServiceDefinition definition, StoreHome home, CancellationToken ct)
    {
        home.EnsureReady(); // the gateway's folder, and the launchd agent's log, exist and are private before it starts
        var text = Render(definition);
        var path = FilePath;
        var existed = File.Exists(path);
        var unchanged = existed && await File.ReadAllTextAsync(path, ct) == text;
        if (!unchanged)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temp = path + ".tmp";
            File.Delete(temp);
            await using (var stream = new FileStream(temp, StoreHome.PrivateFileOptions(FileMode.CreateNew, FileAccess.Write, FileShare.None)))
            await using (var writer = new StreamWriter(stream))
            {
                await writer.WriteAsync(text.AsMemory(), ct); // 0600: it names the home folder and the store
            }

            File.Move(temp, path, overwrite: true);
        }

        output.WriteLine($"{(unchanged ? "Unchanged" : "Wrote")} {path}: runs '{definition.Binary} serve' for the home folder {definition.Home}.");

        // A gateway this home already has (started by 'latchkey serve' or 'latchkey run') holds the home's lock:
        // the service's gateway would stop at once ("already running"). Load it, and say what to stop.
        var running = await GatewayLocator.FindHealthyAsync(home, ct);
        var startNow = running is null || await ServicePidAsync(ct) == running.Pid;
        if (!startNow)
        {
            output.WriteLine($"A gateway started outside the service already serves this home (pid {running!.Pid}, {running.Url}); the service starts once it stops.");
        }

        string[][] steps = Platform == ServicePlatform.Systemd
            ? [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", .. startNow ? new[] { "--now" } : [], ServiceDefinition.SystemdUnitName]]
            : [["launchctl", "bootout", Domain(), path], ["launchctl", "bootstrap", Domain(), path]];
        var started = await RunStepsAsync(steps, ignoreFailureOf: Platform == ServicePlatform.Launchd ? 0 : -1, ct);
        if (started && Platform == ServicePlatform.Systemd && existed && !unchanged && startNow)
        {
            // enable --now does not restart a unit that already runs an older file
            await RunAsync(["systemctl", "--user", "try-restart", ServiceDefinition.SystemdUnitName], ct);
        }

        if (!startNow)
        {
            output.WriteLine($"Then: kill {running!.Pid} && {(Platform == ServicePlatform.Systemd ? "systemctl --user start latchkey" : $"launchctl kickstart {Domain()}/{ServiceDefinition.LaunchdLabel}")}");
        }

        if (started)
        {
            output.WriteLine($"Logs: {Logs(definition)}. 'latchkey run' and the other commands use this gateway while it runs; 'latchkey service status' shows it.");
        }

        return started;
    }

    /// <summary>Stops and unloads the service and removes its file. Returns false when there was nothing installed.</summary>
    public async Task<bool> UninstallAsync(CancellationToken ct)
    {
        var path = FilePath;
        if (!File.Exists(path))
        {
            output.WriteLine($"No service is installed ({path} does not exist).");
            return false;
        }

        string[][] before = Platform == ServicePlatform.Systemd
            ? [["systemctl", "--user", "disable", "--now", ServiceDefinition.SystemdUnitName]]
            : [["launchctl", "bootout", Domain(), path]];
        var reached = await RunStepsAsync(before, ignoreFailureOf: Platform == ServicePlatform.Launchd ? 0 : -1, ct,
            byHand: Platform == ServicePlatform.Systemd ? "systemctl --user stop latchkey.service && systemctl --user daemon-reload" : null);
        File.Delete(path);
        output.WriteLine($"Removed {path}.");
        var wanted = Path.Combine(Path.GetDirectoryName(path)!, "default.target.wants", ServiceDefinition.SystemdUnitName);
        if (Platform == ServicePlatform.Systemd && !reached && new FileInfo(wanted).LinkTarget is not null)
        {
            File.Delete(wanted); // what 'enable' linked, which 'disable' could not take back
            output.WriteLine($"Removed {wanted}.");
        }

        if (reached && Platform == ServicePlatform.Systemd)
        {
            await RunStepsAsync([["systemctl", "--user", "daemon-reload"]], -1, ct);
        }

        return true;
    }

    /// <summary>What the service manager says about the service: state, pid, and the word it used.</summary>
    public sealed record ServiceState(bool Reached, bool Running, int? Pid, string Description);

    /// <summary>Asks the service manager whether the service runs.</summary>
    public async Task<ServiceState> QueryAsync(CancellationToken ct)
    {
        if (Platform == ServicePlatform.Systemd)
        {
            var show = await RunAsync(["systemctl", "--user", "show", ServiceDefinition.SystemdUnitName, "-p", "ActiveState", "-p", "SubState", "-p", "MainPID"], ct);
            if (show.ExitCode != 0)
            {
                return new ServiceState(false, false, null, $"unknown: {show.Problem}");
            }

            var values = show.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
            var active = values.GetValueOrDefault("ActiveState", "unknown");
            var sub = values.GetValueOrDefault("SubState", string.Empty);
            int? pid = int.TryParse(values.GetValueOrDefault("MainPID"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p > 0 ? p : null;
            return new ServiceState(true, active == "active", pid, sub.Length > 0 ? $"{active} ({sub})" : active);
        }

        var print = await RunAsync(["launchctl", "print", $"{Domain()}/{ServiceDefinition.LaunchdLabel}"], ct);
        if (print.ExitCode != 0)
        {
            return print.Found ? new ServiceState(true, false, null, "not loaded") : new ServiceState(false, false, null, $"unknown: {print.Problem}");
        }

        string? Field(string name) => print.Stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(name + " = ", StringComparison.Ordinal))?[(name.Length + 3)..];
        var state = Field("state") ?? "loaded";
        int? launchdPid = int.TryParse(Field("pid"), NumberStyles.None, CultureInfo.InvariantCulture, out var lp) ? lp : null;
        return new ServiceState(true, state == "running", launchdPid, state);
    }

    /// <summary>Where the service's gateway logs.</summary>
    public string Logs(ServiceDefinition? definition) => Platform == ServicePlatform.Systemd
        ? "journalctl --user -u latchkey"
        : definition?.LaunchdLogPath ?? "the StandardOutPath of " + FilePath;

    /// <summary>The binary the installed service file runs, or null when none is installed or it cannot be read.</summary>
    public string? InstalledBinary()
    {
        var path = FilePath;
        if (!File.Exists(path))
        {
            return null;
        }

        var text = File.ReadAllText(path);
        return Platform == ServicePlatform.Systemd ? ServiceDefinition.ReadSystemdBinary(text) : ServiceDefinition.ReadLaunchdBinary(text);
    }

    private async Task<int?> ServicePidAsync(CancellationToken ct)
    {
        if (!File.Exists(FilePath))
        {
            return null;
        }

        var state = await QueryAsync(ct);
        return state.Running ? state.Pid : null;
    }

    /// <summary>Runs the steps in order; at the first that fails (but <paramref name="ignoreFailureOf"/>), says what to run by hand.</summary>
    private async Task<bool> RunStepsAsync(string[][] steps, int ignoreFailureOf, CancellationToken ct, string? byHand = null)
    {
        for (var i = 0; i < steps.Length; i++)
        {
            var result = await RunAsync(steps[i], ct);
            if (result.ExitCode == 0 || i == ignoreFailureOf)
            {
                continue;
            }

            var remaining = byHand ?? string.Join(" && ", steps.Skip(i).Where((_, j) => i + j != ignoreFailureOf).Select(s => string.Join(' ', s.Select(ShellWord))));
            output.WriteLine($"'{string.Join(' ', steps[i])}' did not work ({result.Problem}). Run it where {(Platform == ServicePlatform.Systemd ? "your systemd user session is" : "you are logged in")}: {remaining}");
            return false;
        }

        return true;
    }

    private sealed record Outcome(bool Found, int ExitCode, string Stdout, string Stderr)
    {
        public string Problem => Stderr.Trim().Split('\n').FirstOrDefault(l => l.Length > 0) ?? $"exit {ExitCode}";
    }

    private async Task<Outcome> RunAsync(string[] command, CancellationToken ct)
    {
        var exe = FindOnPath(command[0]);
        if (exe is null)
        {
            return new Outcome(false, -1, string.Empty, $"{command[0]} is not on PATH");
        }

        var start = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                process.Kill(entireProcessTree: true);
                return new Outcome(true, -1, string.Empty, $"{command[0]} did not answer within 30 s");
            }

            return new Outcome(true, process.ExitCode, await stdout, await stderr);
        }
        catch (Win32Exception ex)
        {
            return new Outcome(false, -1, string.Empty, ex.Message);
        }
    }

    private string? FindOnPath(string program)
    {
        foreach (var folder in (getEnvironment("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(folder, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string ShellWord(string word) =>
        word.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or '@' or ':' or '=') ? word : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static string Domain() => "gui/" + NativeMethods.GetUid().ToString(CultureInfo.InvariantCulture);

    private string UserHome()
    {
        var home = getEnvironment("HOME");
        return string.IsNullOrWhiteSpace(home) ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) : home;
    }

    private string ConfigHome()
    {
        var xdg = getEnvironment("XDG_CONFIG_HOME");
        return !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg) ? xdg : Path.Combine(UserHome(), ".config");
    }
}
