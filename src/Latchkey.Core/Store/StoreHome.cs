using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Latchkey.Store;

/// <summary>
/// The home folder: where the database and the master key live. Resolved from <c>--home</c>, else
/// <c>LATCHKEY_HOME</c>, else <c>$XDG_DATA_HOME/latchkey</c>, else <c>~/.local/share/latchkey</c>. Nothing in the
/// path is ephemeral (no version number, port or working directory), so every process finds the same store.
/// </summary>
internal sealed partial class StoreHome
{
    /// <summary>Owner-only folder mode (0700).</summary>
    public const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Owner-only file mode (0600).</summary>
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Options for a file only its owner may read (created 0600 on Unix).</summary>
    public static FileStreamOptions PrivateFileOptions(System.IO.FileMode mode, FileAccess access, FileShare share = FileShare.Read, FileOptions options = FileOptions.None)
    {
        var result = new FileStreamOptions { Mode = mode, Access = access, Share = share, Options = options };
        if (!OperatingSystem.IsWindows())
        {
            result.UnixCreateMode = FileMode;
        }

        return result;
    }

    public StoreHome(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>The home's full path as it was given (<see cref="System.IO.Path.GetFullPath(string)"/>: links not resolved, a trailing separator kept).</summary>
    public string Path { get; }

    /// <summary>
    /// The home's path with every symbolic link resolved and no trailing separator (<c>realpath(3)</c>), the same
    /// however the home was reached (<c>--home H/</c>, a link to H); the full path without a trailing separator when
    /// it cannot be resolved (it does not exist yet) and on Windows.
    /// </summary>
    public string CanonicalPath => Canonicalize(Path);

    /// <summary>See <see cref="CanonicalPath"/>.</summary>
    public static string Canonicalize(string path)
    {
        var trimmed = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        if (OperatingSystem.IsWindows())
        {
            return trimmed;
        }

        var resolved = RealPath(trimmed, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return trimmed;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved) is { Length: > 0 } text ? System.IO.Path.TrimEndingDirectorySeparator(text) : trimmed;
        }
        finally
        {
            Free(resolved);
        }
    }

    /// <summary>Names the network filesystem a path is on, or <see langword="null"/>; replaceable for tests.</summary>
    public Func<string, string?> DetectNetworkFilesystem { get; init; } = NetworkFilesystem.Detect;

    public string DatabasePath => System.IO.Path.Combine(Path, "latchkey.db");

    public string KeyFilePath => System.IO.Path.Combine(Path, "master.key");

    /// <summary>Resolves the home folder from the option, then the environment, then the XDG default.</summary>
    public static StoreHome Resolve(string? homeOption, Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        if (!string.IsNullOrWhiteSpace(homeOption))
        {
            return new StoreHome(homeOption);
        }

        var fromEnv = getEnvironment("LATCHKEY_HOME");
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            return new StoreHome(fromEnv);
        }

        var xdg = getEnvironment("XDG_DATA_HOME");
        if (!string.IsNullOrWhiteSpace(xdg) && System.IO.Path.IsPathRooted(xdg))
        {
            return new StoreHome(System.IO.Path.Combine(xdg, "latchkey"));
        }

        var home = getEnvironment("HOME");
        if (string.IsNullOrWhiteSpace(home))
        {
            home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        }

        return new StoreHome(System.IO.Path.Combine(home, ".local", "share", "latchkey"));
    }

    /// <summary>
    /// Creates the folder (0700) when missing, and refuses one that other users can reach or that sits on a
    /// network filesystem.
    /// </summary>
    public void EnsureReady()
    {
        if (!Directory.Exists(Path))
        {
            try
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(Path);
                }
                else
                {
                    Directory.CreateDirectory(Path, FolderMode);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new StoreException("home_unwritable",
                    $"Cannot create the Latchkey home folder {Path}: {ex.Message}. Choose another with --home or LATCHKEY_HOME.", innerException: ex);
            }
        }

        if (CheckFolderMode() is { } problem)
        {
            throw new StoreException("home_permissions", problem);
        }

        if (DetectNetworkFilesystem(Path) is { } fsType)
        {
            throw new StoreException("network_filesystem",
                $"The Latchkey home folder {Path} is on a network filesystem ({fsType}). SQLite's write-ahead log does not work safely there, and credentials could be lost. Put the home folder on a local disk with --home or LATCHKEY_HOME, or use a PostgreSQL store for shared use.");
        }
    }

    /// <summary>Returns a sentence describing a folder mode other users can use, or <see langword="null"/>.</summary>
    public string? CheckFolderMode() => OpenToOthers(Path, Directory.Exists) is { } mode
        ? $"The Latchkey home folder {Path} is open to other users (mode {Octal(mode)}). Run: chmod 700 '{Path}'"
        : null;

    /// <summary>Returns a sentence describing a file mode other users can use, or <see langword="null"/>.</summary>
    public static string? CheckFileMode(string file) => OpenToOthers(file, File.Exists) is { } mode
        ? $"{file} is open to other users (mode {Octal(mode)}). Run: chmod 600 '{file}'"
        : null;

    public static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0x1FF, 8);

    /// <summary>The mode of <paramref name="path"/> when it exists and others than its owner can use it; else null (and always on Windows).</summary>
    private static UnixFileMode? OpenToOthers(string path, Func<string, bool> exists)
    {
        if (OperatingSystem.IsWindows() || !exists(path))
        {
            return null;
        }

        var mode = File.GetUnixFileMode(path);
        return (mode & GroupOrOther) != 0 ? mode : null;
    }

    /// <summary>
    /// Loads the master key, creating it (0600) on first use. Creation is race-free across processes: each writes
    /// its candidate to a private temporary file and links it into place with <c>link(2)</c>, which fails when the
    /// name exists, so exactly one key wins and every process uses it.
    /// </summary>
    /// <remarks>Not <c>File.Move(..., overwrite: false)</c>: on Unix .NET implements it as "if the destination does
    /// not exist, rename(2)", and two processes that both saw no key would each rename their own into place, the
    /// second replacing the first that a store may already be sealing with.</remarks>
    public byte[] LoadOrCreateMasterKey()
    {
        if (TryReadKeyFile() is { } existing)
        {
            return existing;
        }

        var candidate = RandomNumberGenerator.GetBytes(32);
        var temp = KeyFilePath + $".tmp-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        try
        {
            using (var stream = new FileStream(temp, PrivateFileOptions(System.IO.FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.WriteThrough)))
            {
                stream.Write(candidate);
                stream.Flush(flushToDisk: true);
            }

            if (LinkIntoPlace(temp, KeyFilePath))
            {
                return candidate.ToArray();
            }

            // Another process won the race: use its key.
        }
        finally
        {
            CryptographicOperations.ZeroMemory(candidate);
            File.Delete(temp);
        }

        return TryReadKeyFile() ?? throw new StoreException("key_unavailable",
            $"The master key file {KeyFilePath} could not be created or read. Check the folder's permissions with 'latchkey doctor'.", retryable: true);
    }

    /// <summary>Gives <paramref name="path"/> the file at <paramref name="temp"/> unless that name exists (then false).</summary>
    private static bool LinkIntoPlace(string temp, string path)
    {
        if (OperatingSystem.IsWindows())
        {
            try
            {
                File.Move(temp, path, overwrite: false); // MoveFileEx without REPLACE_EXISTING: fails if it exists
                return true;
            }
            catch (IOException) when (File.Exists(path))
            {
                return false;
            }
        }

        if (Link(temp, path) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno == EExist)
        {
            return false;
        }

        throw new StoreException("key_unavailable",
            $"The master key file {path} could not be created: link(2) failed with errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}). The home folder must be on a file system with hard links (not FAT or some network shares); choose another with --home or LATCHKEY_HOME.", retryable: false);
    }

    private const int EExist = 17; // EEXIST on Linux and macOS

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string created);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr RealPath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(IntPtr pointer);

    /// <summary>
    /// Writes <paramref name="key"/> to <c>master.key</c> (0600) for <c>latchkey key move --to file</c>; refuses
    /// when the file exists (a key is never overwritten).
    /// </summary>
    public void WriteMasterKeyFile(ReadOnlySpan<byte> key)
    {
        var temp = KeyFilePath + $".tmp-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        try
        {
            using (var stream = new FileStream(temp, PrivateFileOptions(System.IO.FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.WriteThrough)))
            {
                stream.Write(key);
                stream.Flush(flushToDisk: true);
            }

            if (!LinkIntoPlace(temp, KeyFilePath))
            {
                throw new StoreException("key_exists", $"{KeyFilePath} exists already. Nothing was changed; move it aside if it is not this home's key.");
            }
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>The key in <c>master.key</c>, or null when there is no such file.</summary>
    /// <exception cref="StoreException">The file is unreadable, damaged or open to others.</exception>
    public byte[]? TryReadKeyFile()
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(KeyFilePath);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StoreException("key_unavailable",
                $"The master key file {KeyFilePath} cannot be read ({ex.Message}). Nothing was changed; fix its permissions (chmod 600) and try again.", retryable: true, innerException: ex);
        }

        if (bytes.Length != 32)
        {
            CryptographicOperations.ZeroMemory(bytes);
            throw new StoreException("key_invalid",
                $"The master key file {KeyFilePath} is {bytes.Length} bytes long, not 32: it is damaged or not Latchkey's. Nothing was changed. Restore it from a backup; without it, stored secrets cannot be decrypted.");
        }

        if (CheckFileMode(KeyFilePath) is { } problem)
        {
            CryptographicOperations.ZeroMemory(bytes);
            throw new StoreException("key_permissions", problem);
        }

        return bytes;
    }
}
