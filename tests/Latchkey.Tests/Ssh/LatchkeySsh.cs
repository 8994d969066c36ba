using System.Diagnostics;
using System.Text;

namespace Latchkey.Tests.Ssh;

/// <summary>
/// A running <c>latchkey ssh</c>, with its output collected as it comes (so a test can act while the remote command
/// waits) and its standard input open (the remote command's standard input). Killed on dispose if still running.
/// </summary>
internal sealed class LatchkeySsh : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _outputEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _errorEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private LatchkeySsh(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Append(_stdout, e.Data, _outputEnded);
        process.ErrorDataReceived += (_, e) => Append(_stderr, e.Data, _errorEnded);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

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

    /// <summary>Starts <c>latchkey ssh ARGS</c> on <paramref name="home"/>.</summary>
    public static LatchkeySsh Start(string home, IEnumerable<string> args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, home, ["ssh", .. args]);
        info.Environment.Remove("LATCHKEY_URL");
        info.Environment.Remove("LATCHKEY_KEY");
        return new LatchkeySsh(Process.Start(info)!);
    }

    /// <summary>Waits for a line <paramref name="line"/> on standard output; returns the output so far.</summary>
    public async Task<string> WaitForLineAsync(string line)
    {
        bool Printed() => Stdout.Split('\n').Any(l => l.TrimEnd('\r') == line);
        await RealTime.UntilAsync(() => Printed() || _process.HasExited, Timeout, TimeSpan.FromMilliseconds(50));
        if (Printed())
        {
            return Stdout;
        }

        throw new TimeoutException($"no line '{line}' from latchkey ssh.\nstdout: {Stdout}\nstderr: {Stderr}");
    }

    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Sends <paramref name="signal"/> to latchkey itself (not its children).</summary>
    public void Signal(int signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Closes standard input and waits for the exit.</summary>
    public async Task<Processes.Result> WaitAsync()
    {
        _process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(Timeout);
        await _process.WaitForExitAsync(timeout.Token);
        await Task.WhenAll(_outputEnded.Task, _errorEnded.Task).WaitAsync(TimeSpan.FromSeconds(10));
        return new Processes.Result(_process.ExitCode, Stdout, Stderr);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private static void Append(StringBuilder text, string? line, TaskCompletionSource ended)
    {
        if (line is null)
        {
            ended.TrySetResult();
            return;
        }

        lock (text)
        {
            text.Append(line).Append('\n');
        }
    }
}
