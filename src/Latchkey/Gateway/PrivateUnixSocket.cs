using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Latchkey.Gateway;

/// <summary>
/// The gateway's Unix socket, private from its first moment. <c>bind(2)</c> creates a socket with the mode the
/// process's umask allows (0777 under <c>umask 0</c>, 0775 under the common <c>umask 002</c>), so making it 0600
/// afterwards leaves a window in which another user may connect and keep the connection. Here Kestrel binds inside
/// a fresh folder next to the final path, created 0700 by <c>mkdir(2)</c> (which fails if anything is already
/// there), the socket is made 0600 while nobody else can reach it, and only then renamed into place.
/// <c>rename(2)</c> is atomic: the path names the old socket or the new private one, never anything between.
/// </summary>
/// <remarks><b>Concurrency.</b> One gateway owns one instance: <see cref="Place"/> after Kestrel has started,
/// <see cref="Dispose"/> when it stops.</remarks>
internal sealed partial class PrivateUnixSocket : IDisposable
{
    private const uint OwnerOnlyFolder = 0x1C0; // 0700
    private const int AlreadyExists = 17; // EEXIST
    private readonly string? _folder;
    private bool _placed;

    private PrivateUnixSocket(string path, string staged, string? folder)
    {
        Path = path;
        StagedPath = staged;
        _folder = folder;
    }

    /// <summary>Where clients connect.</summary>
    public string Path { get; }

    /// <summary>Where Kestrel binds: inside the private staging folder.</summary>
    public string StagedPath { get; }

    /// <summary>Creates the staging folder for a socket at <paramref name="path"/>.</summary>
    /// <exception cref="IOException">The folder cannot be created (the socket's folder is not writable).</exception>
    public static PrivateUnixSocket Prepare(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (OperatingSystem.IsWindows())
        {
            return new PrivateUnixSocket(full, full, null);
        }

        var parent = System.IO.Path.GetDirectoryName(full) ?? throw new IOException($"The socket path {full} has no folder.");
        for (var attempt = 0; ; attempt++)
        {
            // Short: ".lkXXXXXX/s" is no longer than "gateway.sock", so a staged path fits in sun_path whenever the
            // default one does. The name need not be secret: mkdir refuses one that is taken (anything there, a
            // symbolic link included), and then another is drawn.
            var folder = System.IO.Path.Combine(parent, ".lk" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3)));
            if (Mkdir(folder, OwnerOnlyFolder) == 0)
            {
                return new PrivateUnixSocket(full, System.IO.Path.Combine(folder, "s"), folder);
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != AlreadyExists || attempt >= 8)
            {
                throw new IOException($"Cannot create a private folder for the Unix socket in {parent}: {Marshal.GetPInvokeErrorMessage(errno)}.");
            }
        }
    }

    /// <summary>Makes the bound socket 0600, then renames it to <see cref="Path"/> (replacing a stale one).</summary>
    public void Place()
    {
        if (_folder is null || OperatingSystem.IsWindows())
        {
            return;
        }

        File.SetUnixFileMode(StagedPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(StagedPath, Path, overwrite: true);
        _placed = true;
        TryDeleteFolder();
    }

    /// <summary>Removes the staging folder, and the socket when this instance placed it.</summary>
    public void Dispose()
    {
        if (_placed)
        {
            try
            {
                File.Delete(Path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // the next gateway replaces it
            }
        }

        TryDeleteFolder();
    }

    private void TryDeleteFolder()
    {
        if (_folder is null)
        {
            return;
        }

        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // a leftover empty folder: harmless, 0700
        }
    }

    [LibraryImport("libc", EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Mkdir(string path, uint mode);
}
