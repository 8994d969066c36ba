using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// The gateway's Unix socket must be private from the moment it exists. <c>bind(2)</c> creates it with whatever
/// mode the umask leaves (0777 under <c>umask 0</c>), so a socket made 0600 only after the gateway started can be
/// connected to by another user in between, and a connection once made stays open. Here another user (<c>nobody</c>,
/// through <c>setpriv</c>) connects to the socket's path in a tight loop while the gateway starts again and again,
/// with the socket in a folder every user may enter and the gateway under <c>umask 0</c>.
/// </summary>
public sealed class UnixSocketTests : IDisposable
{
    private const int Starts = 10;

    // The other user's connector: connects to the path over and over, counting what happened, until SIGTERM.
    private const string Connector = """
        const net = require('net');
        const counts = { connected: 0 };
        const path = process.argv[1];
        let stopping = false;
        process.on('SIGTERM', () => { stopping = true; console.log(JSON.stringify(counts)); process.exit(0); });
        function once() {
          if (stopping) return;
          const s = net.connect({ path });
          s.on('connect', () => { counts.connected++; s.destroy(); setImmediate(once); });
          s.on('error', (e) => { counts[e.code] = (counts[e.code] || 0) + 1; setImmediate(once); });
        }
        once();
        console.error('ready');
        """;

    private readonly TempHome _home = new();
    private readonly DirectoryInfo _open = Directory.CreateTempSubdirectory("lk-sock-");

    public UnixSocketTests()
    {
        // A folder any user may enter, as a --socket outside the home might be in.
        File.SetUnixFileMode(_open.FullName, (UnixFileMode)0b111_101_101);
    }

    public void Dispose()
    {
        _home.Dispose();
        _open.Delete(recursive: true);
    }

    [AsAnotherUserFact]
    public async Task Serve_AnotherUserConnectingInALoopWhileTheGatewayStarts_NeverConnects()
    {
        var socket = Path.Combine(_open.FullName, "gw.sock");
        using var connector = StartConnector(socket);
        Process? last = null;
        try
        {
            for (var i = 0; i < Starts; i++)
            {
                var gateway = await StartGatewayUnderUmaskZeroAsync(socket);
                Assert.True(File.Exists(socket), "the gateway did not create its socket");
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
                Assert.Empty(Directory.GetDirectories(_open.FullName)); // no staging folder left behind
                if (i < Starts - 1)
                {
                    gateway.Kill();
                    await gateway.WaitForExitAsync();
                    gateway.Dispose();
                }
                else
                {
                    last = gateway;
                }
            }

            var during = await CountsAsync(connector);
            Assert.True(during.GetValueOrDefault("connected") == 0, $"another user connected to the gateway's socket while it started: {JsonSerializer.Serialize(during)}");
            Assert.True(during.GetValueOrDefault("EACCES") > 0, $"the connector never met the private socket: {JsonSerializer.Serialize(during)}");

            // Control: the same connector does connect once the socket is opened up, so the zero above means something.
            File.SetUnixFileMode(socket, (UnixFileMode)0b110_110_110);
            using var control = StartConnector(socket);
            await RealTime.ForAsync(TimeSpan.FromMilliseconds(300)); // the connector process tries for a while; its counts are read once it is stopped
            Assert.True((await CountsAsync(control)).GetValueOrDefault("connected") > 0, "the connector cannot connect even to an open socket: the test proves nothing");
        }
        finally
        {
            if (last is not null)
            {
                last.Kill();
                await last.WaitForExitAsync();
                last.Dispose();
            }
        }
    }

    /// <summary>Starts <c>latchkey serve</c> under <c>umask 0</c> and waits until it says it listens.</summary>
    private async Task<Process> StartGatewayUnderUmaskZeroAsync(string socket)
    {
        var info = Processes.StartInfo("/bin/sh", _home.Path, ["-c", "umask 0; exec \"$0\" \"$@\"", Processes.LatchkeyExe, "serve", "--listen", "127.0.0.1:0", "--socket", socket]);
        var process = Process.Start(info)!;
        process.StandardInput.Close();
        var log = new StringBuilder();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("latchkey serve exited: " + log));
                return;
            }

            log.AppendLine(e.Data);
            if (e.Data.StartsWith("Latchkey gateway on", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) => log.AppendLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return process;
    }

    private static Process StartConnector(string socket)
    {
        var info = new ProcessStartInfo("/usr/bin/setpriv") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/node", "-e", Connector, socket })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["HOME"] = "/";
        var process = Process.Start(info)!;
        Assert.Equal("ready", process.StandardError.ReadLine());
        return process;
    }

    private static async Task<Dictionary<string, int>> CountsAsync(Process connector)
    {
        using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", connector.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) }, UseShellExecute = false })!)
        {
            await kill.WaitForExitAsync();
        }

        var output = await connector.StandardOutput.ReadToEndAsync();
        await connector.WaitForExitAsync();
        return JsonSerializer.Deserialize<Dictionary<string, int>>(output.Trim()) ?? [];
    }
}

/// <summary>A test that acts as another user (<c>nobody</c>, through <c>setpriv</c>): skipped, with the reason, unless
/// the tests run as root with <c>setpriv</c> and <c>/usr/bin/node</c> at hand.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class AsAnotherUserFactAttribute : FactAttribute
{
    public AsAnotherUserFactAttribute()
    {
        if (Environment.UserName != "root")
        {
            Skip = "acting as another user (setpriv --reuid=nobody) needs root; these tests run as " + Environment.UserName;
        }
        else if (!File.Exists("/usr/bin/setpriv") || !File.Exists("/usr/bin/node"))
        {
            Skip = "needs /usr/bin/setpriv (util-linux) and /usr/bin/node to act as another user";
        }
    }
}
