using System.Runtime.InteropServices;

namespace Latchkey.Local;

/// <summary>
/// Cancels <see cref="Token"/> on the first SIGINT or SIGTERM, as the command tree's invocation does, so a command
/// run outside it still ends cleanly; a second signal ends the process at once.
/// </summary>
internal sealed class CancelOnSignal : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration _interrupt;
    private readonly PosixSignalRegistration _terminate;

    public CancelOnSignal()
    {
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    }

    public CancellationToken Token => _cts.Token;

    public void Dispose()
    {
        _interrupt.Dispose();
        _terminate.Dispose();
        _cts.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        if (_cts.IsCancellationRequested)
        {
            return; // the second signal: let the default action end the process
        }

        context.Cancel = true;
        _cts.Cancel();
    }
}
