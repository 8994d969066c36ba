using System.Diagnostics;

namespace Latchkey.Testing;

/// <summary>SIGTERM for a child process (Process.Kill sends SIGKILL), through the kill(1) command.</summary>
internal static class NativeSignal
{
    public static void Terminate(int pid)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture) }, UseShellExecute = false })!;
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {pid} failed");
        }
    }
}
