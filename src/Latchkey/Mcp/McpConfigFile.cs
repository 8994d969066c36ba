using System.Security.Cryptography;
using System.Text;

namespace Latchkey.Mcp;

/// <summary>
/// Reading and writing a client's configuration file safely: the new text goes to a temporary file in the same
/// folder, with the old file's owner permissions and none for group or others (0600 for a new file: it holds a client
/// key), is flushed to disk and renamed over
/// the old one, so the client never reads half a file; the old file is kept beside it as
/// <c>FILE.latchkey-backup</c>, with its own mode. A symbolic link is followed: the file it points at is replaced and
/// the link stays.
/// </summary>
internal static class McpConfigFile
{
    /// <summary>The suffix of the copy of the file as it was before Latchkey last changed it.</summary>
    public const string BackupSuffix = ".latchkey-backup";

    /// <summary>The mode of a configuration file Latchkey creates: it holds a client key, so only its owner reads it.</summary>
    public const UnixFileMode NewFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>The bits of a mode that concern the file's owner.</summary>
    private const UnixFileMode OwnerBits = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The mode of a folder Latchkey creates for a new configuration file.</summary>
    public const UnixFileMode NewFolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The file's text, or null when there is no file.</summary>
    public static string? Read(string path) => File.Exists(path) ? File.ReadAllText(path, Encoding.UTF8) : null;

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="text"/> atomically, keeping the previous file as
    /// <c>PATH.latchkey-backup</c>. Returns the backup's path, or null when there was no previous file.
    /// </summary>
    /// <exception cref="IOException">The folder cannot be written; the old file is then unchanged.</exception>
    public static string? Write(string path, string text)
    {
        var target = File.Exists(path) && File.ResolveLinkTarget(path, returnFinalTarget: true) is { } link ? link.FullName : path;
        var folder = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (!Directory.Exists(folder))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(folder);
            }
            else
            {
                Directory.CreateDirectory(folder, NewFolderMode);
            }
        }

        var existed = File.Exists(target);
        // The owner's bits are kept; group and others lose theirs, because the file now holds a client key (or held
        // one, for the backup) that would let any local user who reads it use the credential through the gateway.
        var mode = existed && !OperatingSystem.IsWindows() ? (File.GetUnixFileMode(target) & OwnerBits) | NewFileMode : NewFileMode;
        string? backup = null;
        if (existed)
        {
            backup = target + BackupSuffix;
            WriteFile(backup, File.ReadAllBytes(target), mode);
        }

        var temporary = Path.Combine(folder, $".{Path.GetFileName(target)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}.latchkey-tmp");
        try
        {
            WriteFile(temporary, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text), mode);
            File.Move(temporary, target, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }

        return backup;
    }

    /// <summary>Writes <paramref name="bytes"/> to a new file created with <paramref name="mode"/> (exactly, whatever the umask), flushed to disk.</summary>
    private static void WriteFile(string path, byte[] bytes, UnixFileMode mode)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = NewFileMode; // never readable by others, even for the moment before the mode below is set
        }

        using (var stream = new FileStream(path, options))
        {
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }
}
