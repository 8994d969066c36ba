using System.Diagnostics;
using System.Globalization;
using Latchkey.Diagnostics;

namespace Latchkey.Ssh;

/// <summary>Where the forwards lead on this machine: the gateway's Unix socket, or its loopback TCP address.</summary>
/// <param name="Spec">The local half of an <c>ssh -R</c> specification: a socket path or <c>127.0.0.1:PORT</c>.</param>
internal sealed record ForwardTarget(string Spec);

/// <summary>What the remote side can reach once the forwards are up.</summary>
/// <param name="TcpPort">The loopback port on the remote host that leads to the gateway.</param>
/// <param name="SocketPath">The remote Unix socket that leads to the gateway, or null when the server refused it.</param>
internal sealed record RemoteEndpoints(int TcpPort, string? SocketPath);

/// <summary>
/// One <c>latchkey ssh</c> session, driving the system's <c>ssh</c>:
/// <list type="number">
/// <item>the main <c>ssh</c> (the user's terminal, options and command) is a master connection on a private
/// control socket; its remote command makes a private folder with a FIFO and waits on it;</item>
/// <item>through the control socket a second session prints the remote home and waits for the FIFO;</item>
/// <item>the forwards are added through the control socket (<c>ssh -O forward</c>), so each refusal is seen on
/// its own: first the gateway's Unix socket into the private folder, then a loopback TCP port;</item>
/// <item>the environment (with the session key) goes to the second session's standard input, which copies it
/// into the FIFO; the main session sources it and runs the command.</item>
/// </list>
/// One sign-in (one connection), and the key is never in an argument list or in a file at rest.
/// </summary>
/// <remarks><b>Concurrency.</b> One session per instance; <see cref="RunAsync"/> is called once.</remarks>
internal sealed class SshSession(string ssh, SshArguments arguments, string id, string controlPath, ForwardTarget target, int remotePort, bool terminal, TextWriter error)
{
    private Process? _master;
    private Process? _handOver;

    /// <summary>The main <c>ssh</c> process, once started (for passing on signals).</summary>
    public Process? Master => _master;

    /// <summary>Runs the session; returns the exit status of the remote command (or ssh's own, 255, when it failed).</summary>
    /// <param name="environment">The remote environment for the endpoints the server agreed to.</param>
    public async Task<int> RunAsync(Func<RemoteEndpoints, IEnumerable<KeyValuePair<string, string>>> environment)
    {
        try
        {
            _master = Start(MasterArguments(), redirect: false);
            if (!await WaitForControlSocketAsync(_master))
            {
                await _master.WaitForExitAsync();
                error.WriteLine($"latchkey ssh: ssh could not connect to {arguments.Destination} (exit {_master.ExitCode}; its message is above). The session key was not used.");
                return _master.ExitCode;
            }

            _handOver = Start(MuxArguments(["-T"], RemoteScripts.HandOver(id)), redirect: true);
            var handOverErrors = _handOver.StandardError.ReadToEndAsync();
            var home = await ReadHomeAsync(_handOver, handOverErrors);
            var endpoints = await ForwardAsync(home);
            await _handOver.StandardInput.WriteAsync(RemoteScripts.Environment(environment(endpoints)));
            _handOver.StandardInput.Close();

            await _master.WaitForExitAsync();
            if (!_handOver.WaitForExit(2000))
            {
                _handOver.Kill();
            }

            return _master.ExitCode;
        }
        catch
        {
            await EndAsync();
            throw;
        }
        finally
        {
            _handOver?.Dispose();
            _master?.Dispose();
        }
    }

    private List<string> MasterArguments()
    {
        List<string> list =
        [
            "-o", "ControlMaster=yes", "-o", "ControlPath=" + controlPath, "-o", "ControlPersist=no",
            "-o", "ExitOnForwardFailure=yes",
        ];
        if (terminal)
        {
            list.Add("-t");
        }

        list.AddRange(arguments.Options);
        list.Add(arguments.Destination);
        list.Add(RemoteScripts.MainSession(id, arguments.Command));
        return list;
    }

    private List<string> MuxArguments(IEnumerable<string> options, string? command)
    {
        List<string> list = ["-S", controlPath, "-o", "ControlMaster=no"];
        if (arguments.ConfigFile is { } config)
        {
            list.Add("-F");
            list.Add(config);
        }

        list.AddRange(options);
        list.Add(arguments.Destination);
        if (command is not null)
        {
            list.Add(command);
        }

        return list;
    }

    private Process Start(List<string> args, bool redirect)
    {
        var info = new ProcessStartInfo(ssh)
        {
            UseShellExecute = false,
            RedirectStandardInput = redirect,
            RedirectStandardOutput = redirect,
            RedirectStandardError = redirect,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        try
        {
            return Process.Start(info) ?? throw new ActionableException($"Could not start {ssh}.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ActionableException($"Could not run {ssh}: {ex.Message}.", "Install the OpenSSH client (Debian/Ubuntu: apt-get install openssh-client).");
        }
    }

    /// <summary>Waits, for as long as ssh is signing in (which may mean a password prompt), for the control socket.</summary>
    private async Task<bool> WaitForControlSocketAsync(Process master)
    {
        while (!File.Exists(controlPath))
        {
            if (master.HasExited)
            {
                return File.Exists(controlPath);
            }

            await Task.Delay(25);
        }

        return true;
    }

    private async Task<string> ReadHomeAsync(Process handOver, Task<string> errors)
    {
        string? line;
        try
        {
            line = await handOver.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            line = null;
        }

        if (line is null || !line.StartsWith("home /", StringComparison.Ordinal))
        {
            if (_master is { } master && master.WaitForExit(500))
            {
                throw new ActionableException(
                    $"The connection to {arguments.Destination} ended before the session started (ssh exit {master.ExitCode}; any message from the remote side is above).",
                    "Check that the remote account has a POSIX sh and a writable home folder (docs/ssh.md).");
            }

            await EndAsync();
            var said = handOver.HasExited ? (await errors).Trim() : string.Empty;
            throw new ActionableException(
                $"{arguments.Destination} did not open a second session over the connection{(said.Length > 0 ? $" ({said})" : string.Empty)}: latchkey ssh needs two (the server's MaxSessions must be 2 or more).",
                "Raise MaxSessions in that server's sshd_config, or sign in on that machine itself: latchkey login --device (docs/ssh.md).");
        }

        return line["home ".Length..];
    }

    private async Task<RemoteEndpoints> ForwardAsync(string home)
    {
        var socket = $"{home.TrimEnd('/')}/{RemoteScripts.SessionFolder(id)}/gateway.sock";
        var streamLocal = await MuxAsync("-O", "forward", "-R", $"{socket}:{target.Spec}");
        if (streamLocal.Exit != 0)
        {
            error.WriteLine($"latchkey ssh: {arguments.Destination} refused to forward the gateway's Unix socket (its sshd_config has AllowStreamLocalForwarding no or local, or DisableForwarding yes); using a loopback TCP port there instead.");
        }

        var tcp = await MuxAsync("-O", "forward", "-R", $"127.0.0.1:{remotePort.ToString(CultureInfo.InvariantCulture)}:{target.Spec}");
        if (tcp.Exit != 0)
        {
            var taken = remotePort != 0 && (await MuxAsync("-O", "forward", "-R", $"127.0.0.1:0:{target.Spec}")).Exit == 0;
            await EndAsync();
            if (taken)
            {
                throw new ActionableException($"Port {remotePort} is taken on {arguments.Destination}'s loopback interface, so the gateway cannot be forwarded there.",
                    "Leave out --remote-port (a free port is then chosen), or choose another one.");
            }

            throw new ActionableException(
                $"{arguments.Destination} refused to forward a loopback TCP port to the gateway: its sshd_config has AllowTcpForwarding no or local (or DisableForwarding yes, or a PermitListen that excludes 127.0.0.1). "
                + (streamLocal.Exit == 0
                    ? "The Unix-socket forward worked, but agents such as Claude Code need an http:// address."
                    : "It refused the Unix-socket forward too (AllowStreamLocalForwarding)."),
                "Ask for 'AllowTcpForwarding remote' (or yes) in that server's sshd_config, or sign in on that machine itself: latchkey login --device (docs/ssh.md).");
        }

        var port = int.TryParse(tcp.Stdout.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var allocated) ? allocated : remotePort;
        return new RemoteEndpoints(port, streamLocal.Exit == 0 ? socket : null);
    }

    private async Task<(int Exit, string Stdout, string Stderr)> MuxAsync(params string[] options)
    {
        using var process = Start(MuxArguments(options, null), redirect: true);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Ends the connection (and with it every session and forward) after a failure.</summary>
    private async Task EndAsync()
    {
        if (_master is { HasExited: false } master)
        {
            if (File.Exists(controlPath))
            {
                _ = await MuxAsync("-O", "exit");
            }

            if (!master.WaitForExit(5000))
            {
                master.Kill();
            }
        }

        if (_handOver is { HasExited: false } handOver)
        {
            handOver.Kill();
        }
    }
}
