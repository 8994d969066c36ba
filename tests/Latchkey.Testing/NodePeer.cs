using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace Latchkey.Testing;

/// <summary>
/// A Node.js test peer (a script under <c>tests/peers</c>) as an OS process: started with its configuration in
/// environment variables, ready when it prints its first line, a JSON object (<see cref="Ready"/>), within 20 s;
/// its stderr goes to the test output and is kept (<see cref="Stderr"/>); its stdout is drained after the ready
/// line; it is stopped with its whole process tree on dispose.
/// </summary>
internal sealed class NodePeer : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(20);
    private readonly Process _process;
    private readonly StringBuilder _stderr;

    private NodePeer(Process process, StringBuilder stderr, JsonElement ready)
    {
        _process = process;
        _stderr = stderr;
        Ready = ready;
    }

    /// <summary>The peer's ready line.</summary>
    public JsonElement Ready { get; }

    /// <summary>Everything the peer wrote to standard error so far (less the lines it was told to ignore).</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>How to run <c>node tests/peers/RELATIVE</c> (in the script's folder, with every stream redirected).</summary>
    public static ProcessStartInfo StartInfo(string relativeScript)
    {
        var script = Path.Combine(Processes.RepoRoot, "tests", "peers", relativeScript);
        var info = new ProcessStartInfo("node")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(script)!,
        };
        info.ArgumentList.Add(script);
        return info;
    }

    /// <summary>Starts <c>tests/peers/RELATIVE</c> and waits for its ready line.</summary>
    /// <param name="relativeScript">The script, relative to <c>tests/peers</c> (e.g. <c>oidc/server.mjs</c>).</param>
    /// <param name="label">The peer's name in the test output and in errors.</param>
    /// <param name="output">Where its stderr lines go, as <c>[label] line</c>.</param>
    /// <param name="environment">Its configuration.</param>
    /// <param name="ignore">Stderr lines to leave out of both the output and <see cref="Stderr"/>.</param>
    public static async Task<NodePeer> StartAsync(string relativeScript, string label, ITestOutputHelper? output, IReadOnlyDictionary<string, string>? environment = null, Func<string, bool>? ignore = null)
    {
        var info = StartInfo(relativeScript);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("node did not start");
        process.StandardInput.Close();
        var stderr = new StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null || ignore?.Invoke(e.Data) == true)
            {
                return;
            }

            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }

            try
            {
                output?.WriteLine($"[{label}] {e.Data}");
            }
            catch (InvalidOperationException)
            {
                // the test already finished
            }
        };
        process.BeginErrorReadLine();

        using var timeout = new CancellationTokenSource(ReadyTimeout);
        string? line;
        try
        {
            line = await process.StandardOutput.ReadLineAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            line = null;
        }

        if (line is null || !line.StartsWith('{'))
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            string text;
            lock (stderr)
            {
                text = stderr.ToString();
            }

            process.Dispose();
            throw new InvalidOperationException($"{label} was not ready within {ReadyTimeout.TotalSeconds:0} s (did 'npm ci --prefix tests/peers' run?). stdout: {line}; stderr: {text}");
        }

        using var ready = JsonDocument.Parse(line);
        var peer = new NodePeer(process, stderr, ready.RootElement.Clone());
        _ = DrainAsync(process);
        return peer;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync(CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    private static async Task DrainAsync(Process process)
    {
        try
        {
            while (await process.StandardOutput.ReadLineAsync() is not null)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }
}
