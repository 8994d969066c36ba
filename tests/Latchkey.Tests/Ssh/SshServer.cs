using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Latchkey.Tests.Ssh;

/// <summary>
/// A real OpenSSH server (Debian's <c>/usr/sbin/sshd</c>) on a free loopback port, with a throwaway host key, for
/// a throwaway user whose home is a private folder the test controls (the "remote home"), logging in with a
/// throwaway client key. <see cref="ClientConfig"/> is an ssh client configuration (<c>-F</c>) for host
/// <see cref="HostAlias"/> that knows the host key, so nothing in the real <c>~/.ssh</c> is read or written.
/// </summary>
/// <remarks>
/// sshd needs root to switch to the user; the tests run as root (CI). The user is created with <c>useradd</c>
/// (a random name, shell /bin/sh, password field <c>*</c>: not locked, no password) and removed on dispose. Its home
/// sits directly under /tmp, owned by it and 0700, because StrictModes (left on, as on a real server) refuses
/// authorized keys under a folder the user cannot own, and the user cannot enter the test's own 0700 temp folder.
/// <c>UsePAM no</c> (no PAM stack needed), a private <c>PidFile</c>, and <c>-D -e</c> (foreground, log to stderr,
/// kept in <see cref="Log"/>).
/// </remarks>
internal sealed class SshServer : IAsyncDisposable
{
    public const string HostAlias = "latchkey-test-host";

    private readonly Process _sshd;
    private readonly StringBuilder _log;

    private SshServer(string root, string user, string remoteHome, string clientConfig, Process sshd, StringBuilder log)
    {
        Root = root;
        User = user;
        RemoteHome = remoteHome;
        ClientConfig = clientConfig;
        _sshd = sshd;
        _log = log;
    }

    /// <summary>The test's private folder (keys, configurations, known_hosts).</summary>
    public string Root { get; }

    public string User { get; }

    /// <summary>The user's home on the "remote" side.</summary>
    public string RemoteHome { get; }

    /// <summary>The ssh client configuration to pass with <c>-F</c>.</summary>
    public string ClientConfig { get; }

    /// <summary>What sshd logged so far.</summary>
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

    /// <summary>Whether this machine can run the fixture; the reason when it cannot.</summary>
    public static string? Unavailable()
    {
        if (!File.Exists("/usr/sbin/sshd"))
        {
            return "Debian's openssh-server is not installed (test.sh installs it: apt-get install openssh-server)";
        }

        return Environment.UserName == "root" ? null : "sshd must switch to a throwaway user, which needs root (CI runs the tests as root)";
    }

    /// <param name="sshdSettings">Extra sshd_config lines, e.g. <c>AllowStreamLocalForwarding no</c>.</param>
    public static async Task<SshServer> StartAsync(params string[] sshdSettings)
    {
        if (Unavailable() is { } why)
        {
            throw new InvalidOperationException(why);
        }

        var root = Directory.CreateTempSubdirectory("latchkey-sshd-").FullName;
        var user = "lk" + Guid.NewGuid().ToString("N")[..10];
        var remoteHome = Path.Combine(Path.GetTempPath(), "latchkey-remote-" + user);
        Directory.CreateDirectory(remoteHome, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await Run("useradd", "-M", "-d", remoteHome, "-s", "/bin/sh", "-p", "*", user);
        try
        {
            await Run("ssh-keygen", "-q", "-t", "ed25519", "-N", string.Empty, "-C", "host", "-f", Path.Combine(root, "host_key"));
            await Run("ssh-keygen", "-q", "-t", "ed25519", "-N", string.Empty, "-C", "client", "-f", Path.Combine(root, "client_key"));
            var dotSsh = Directory.CreateDirectory(Path.Combine(remoteHome, ".ssh"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
            var authorized = Path.Combine(dotSsh, "authorized_keys");
            File.Copy(Path.Combine(root, "client_key.pub"), authorized);
            File.SetUnixFileMode(authorized, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await Run("chown", "-R", $"{user}:{user}", remoteHome);
            Directory.CreateDirectory("/run/sshd"); // the privilege separation folder Debian's init script makes

            for (var attempt = 0; ; attempt++)
            {
                var port = FreePort();
                var config = Path.Combine(root, "sshd_config");
                await File.WriteAllLinesAsync(config,
                [
                    $"ListenAddress 127.0.0.1:{port}",
                    $"HostKey {Path.Combine(root, "host_key")}",
                    $"PidFile {Path.Combine(root, "sshd.pid")}",
                    $"AllowUsers {user}",
                    "AuthorizedKeysFile .ssh/authorized_keys",
                    "StrictModes yes",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "LogLevel VERBOSE",
                    .. sshdSettings,
                ]);
                var clientConfig = Path.Combine(root, "ssh_config");
                var knownHosts = Path.Combine(root, "known_hosts");
                await File.WriteAllTextAsync(knownHosts, $"[127.0.0.1]:{port} {(await File.ReadAllTextAsync(Path.Combine(root, "host_key.pub"))).Trim()}\n");
                await File.WriteAllLinesAsync(clientConfig,
                [
                    $"Host {HostAlias}",
                    "  HostName 127.0.0.1",
                    $"  Port {port}",
                    $"  User {user}",
                    $"  IdentityFile {Path.Combine(root, "client_key")}",
                    "  IdentitiesOnly yes",
                    $"  UserKnownHostsFile {knownHosts}",
                    "  GlobalKnownHostsFile /dev/null",
                    "  StrictHostKeyChecking yes",
                    "  BatchMode yes",
                    "  LogLevel ERROR",
                ]);

                var (sshd, log, listening) = StartSshd(config);
                if (await listening.WaitAsync(TimeSpan.FromSeconds(20)))
                {
                    return new SshServer(root, user, remoteHome, clientConfig, sshd, log);
                }

                sshd.Kill();
                await sshd.WaitForExitAsync();
                if (attempt == 3)
                {
                    throw new InvalidOperationException("sshd did not start:\n" + log);
                }
            }
        }
        catch
        {
            await Cleanup(user, remoteHome, root);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _sshd.Kill(entireProcessTree: true);
            await _sshd.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
        }

        _sshd.Dispose();
        await Cleanup(User, RemoteHome, Root);
    }

    /// <summary>
    /// Every regular file under the remote home, with its bytes (<c>find -type f</c>: sockets and FIFOs are left
    /// out, since reading a FIFO would block and take what it carries).
    /// </summary>
    public async Task<List<(string Path, byte[] Bytes)>> RemoteFilesAsync()
    {
        var info = new ProcessStartInfo("find") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in new[] { RemoteHome, "-type", "f", "-print0" })
        {
            info.ArgumentList.Add(a);
        }

        using var find = Process.Start(info)!;
        var listing = await find.StandardOutput.ReadToEndAsync();
        await find.WaitForExitAsync();
        var files = new List<(string, byte[])>();
        foreach (var path in listing.Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            try
            {
                files.Add((path, await File.ReadAllBytesAsync(path)));
            }
            catch (FileNotFoundException)
            {
            }
        }

        return files;
    }

    private static (Process Sshd, StringBuilder Log, Task<bool> Listening) StartSshd(string config)
    {
        var info = new ProcessStartInfo("/usr/sbin/sshd") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-D", "-e", "-f", config })
        {
            info.ArgumentList.Add(a);
        }

        var sshd = Process.Start(info)!;
        sshd.StandardInput.Close();
        var log = new StringBuilder();
        var listening = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        sshd.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                listening.TrySetResult(false);
                return;
            }

            lock (log)
            {
                log.AppendLine(e.Data);
            }

            if (e.Data.Contains("Server listening on", StringComparison.Ordinal))
            {
                listening.TrySetResult(true);
            }
        };
        sshd.OutputDataReceived += (_, _) => { };
        sshd.BeginErrorReadLine();
        sshd.BeginOutputReadLine();
        return (sshd, log, listening.Task);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task Cleanup(string user, string remoteHome, string root)
    {
        // userdel refuses while a killed process of the user's is still ending: try for 2 s, then the home folder
        // goes anyway.
        await RealTime.UntilAsync(
            async () =>
            {
                KillProcessesOf(user);
                try
                {
                    await Run("userdel", user);
                    return true;
                }
                catch (InvalidOperationException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(2));

        foreach (var folder in new[] { remoteHome, root })
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>
    /// Ends what the tests left running as the throwaway user (a remote command without a terminal outlives its
    /// connection, as with any ssh), by process id: nothing else runs as that user.
    /// </summary>
    private static void KillProcessesOf(string user)
    {
        if (!int.TryParse(RunOutput("id", "-u", user), out var uid))
        {
            return;
        }

        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out var pid))
            {
                continue;
            }

            try
            {
                var owner = File.ReadLines(Path.Combine(folder, "status")).FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
                if (owner is not null && owner.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture))
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // gone meanwhile
            }
        }
    }

    private static string RunOutput(string exe, params string[] args)
    {
        var info = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return output.Trim();
    }

    private static async Task Run(string exe, params string[] args)
    {
        var info = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} failed ({process.ExitCode}): {await stderr}");
        }
    }
}
