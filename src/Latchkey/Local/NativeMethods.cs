using System.Runtime.InteropServices;

namespace Latchkey.Local;

/// <summary>POSIX calls .NET does not expose: sending a chosen signal, marking descriptors close-on-exec, the user id.</summary>
internal static partial class NativeMethods
{
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>The real user id (launchd's <c>gui/UID</c> domain).</summary>
    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int descriptor, int command, int argument);

    /// <summary>
    /// Marks every open descriptor above 2 close-on-exec, so a long-lived child started next (the background
    /// gateway) inherits none of them: an inherited pipe end would keep whoever reads this process's output
    /// waiting for as long as the child lives. Linux only (it reads /proc/self/fd); elsewhere it does nothing.
    /// </summary>
    public static void CloseDescriptorsOnExec()
    {
        const int SetDescriptorFlags = 2; // F_SETFD
        const int CloseOnExec = 1;        // FD_CLOEXEC
        if (!OperatingSystem.IsLinux() || !Directory.Exists("/proc/self/fd"))
        {
            return;
        }

        foreach (var entry in Directory.GetFileSystemEntries("/proc/self/fd"))
        {
            if (int.TryParse(Path.GetFileName(entry), out var fd) && fd > 2)
            {
                _ = Fcntl(fd, SetDescriptorFlags, CloseOnExec); // a descriptor closed meanwhile is fine
            }
        }
    }
}
