using System.Runtime.InteropServices;

namespace Latchkey.Cli;

/// <summary>The two POSIX calls .NET does not expose: sending a chosen signal, and pointing a descriptor at a file.</summary>
internal static partial class NativeMethods
{
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    public static partial int Dup2(int oldDescriptor, int newDescriptor);

    /// <summary>
    /// Sends standard output and error (descriptors 1 and 2) to <paramref name="path"/>, appended, created 0600:
    /// for a gateway started in the background, whose parent is gone.
    /// </summary>
    public static void RedirectOutputTo(string path)
    {
        using var file = new FileStream(path, Store.StoreHome.PrivateFileOptions(FileMode.Append, FileAccess.Write, FileShare.ReadWrite));
        var fd = (int)file.SafeFileHandle.DangerousGetHandle();
        if (Dup2(fd, 1) < 0 || Dup2(fd, 2) < 0)
        {
            throw new IOException($"Could not send output to {path} (errno {Marshal.GetLastPInvokeError()}).");
        }
    }
}
