using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Latchkey.Local;

/// <summary>
/// While it lives, passes the signals sent to this process on to a child (the agent of <c>latchkey run</c>, the
/// <c>ssh</c> of <c>latchkey ssh</c>) instead of dying of them, so the child ends first and this process can clean up
/// after it (revoke the key it minted). SIGINT is only ignored: Ctrl-C in a terminal reaches the child directly (same
/// process group), and must neither end this process first nor reach the child twice.
/// </summary>
internal sealed class SignalRelay : IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];

    /// <param name="child">The child to pass signals to; null while it is not started (the signal is then dropped).</param>
    /// <param name="passOn">The signals to pass on (SIGTERM, SIGHUP, SIGQUIT).</param>
    public SignalRelay(Func<Process?> child, params PosixSignal[] passOn)
    {
        ArgumentNullException.ThrowIfNull(child);
        ArgumentNullException.ThrowIfNull(passOn);
        _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true));
        foreach (var signal in passOn)
        {
            var number = Number(signal);
            _registrations.Add(PosixSignalRegistration.Create(signal, c =>
            {
                c.Cancel = true;
                PassOn(child(), number);
            }));
        }
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
    }

    private static void PassOn(Process? child, int signal)
    {
        if (child is null)
        {
            return;
        }

        try
        {
            _ = NativeMethods.Kill(child.Id, signal);
        }
        catch (InvalidOperationException)
        {
            // not started, or gone already
        }
    }

    /// <summary>The signal's number on Linux (.NET's <see cref="PosixSignal"/> values are its own).</summary>
    private static int Number(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGHUP => 1,
        PosixSignal.SIGQUIT => 3,
        PosixSignal.SIGTERM => 15,
        _ => throw new ArgumentOutOfRangeException(nameof(signal), signal, "Only SIGTERM, SIGHUP and SIGQUIT are passed on."),
    };
}
