using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Latchkey.Local;

/// <summary>
/// The agent <c>latchkey run</c> starts: a child in this terminal's process group, with an environment of its own,
/// waited for while this process passes signals on to it.
/// </summary>
internal static class AgentProcess
{
    /// <summary>
    /// Starts <paramref name="argv"/> with the variables named in <paramref name="withheld"/> removed from the
    /// environment it inherits and <paramref name="variables"/> set; null when the system started nothing.
    /// </summary>
    /// <exception cref="System.ComponentModel.Win32Exception">The program could not be run (not found, not executable).</exception>
    public static Process? Start(string[] argv, IEnumerable<string> withheld, IEnumerable<KeyValuePair<string, string>> variables)
    {
        ArgumentNullException.ThrowIfNull(argv);
        ArgumentNullException.ThrowIfNull(withheld);
        ArgumentNullException.ThrowIfNull(variables);
        var start = new ProcessStartInfo(argv[0]) { UseShellExecute = false };
        foreach (var a in argv.Skip(1))
        {
            start.ArgumentList.Add(a);
        }

        foreach (var name in withheld)
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in variables)
        {
            start.Environment[name] = value;
        }

        return Process.Start(start);
    }

    /// <summary>
    /// Waits for <paramref name="child"/> to exit and returns its exit code. Ctrl-C in a terminal reaches the agent
    /// directly (same process group), so SIGINT neither ends this process first nor is sent twice; SIGTERM, SIGHUP
    /// and SIGQUIT sent to this process are passed on (<see cref="SignalRelay"/>).
    /// </summary>
    public static async Task<int> WaitPassingSignalsAsync(Process child)
    {
        ArgumentNullException.ThrowIfNull(child);
        using var relay = new SignalRelay(() => child, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT);
        await child.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        return child.ExitCode;
    }
}
