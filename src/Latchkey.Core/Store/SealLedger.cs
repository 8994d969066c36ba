using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Latchkey.Store;

/// <summary>One store a home has seen sealed: the store's identity, the master key's id, and when it was recorded.</summary>
/// <param name="Store">The store's identity (<see cref="StoreSealing.SqliteIdentity"/> or <see cref="StoreSealing.IdentityOf"/>).</param>
/// <param name="KeyId">The id of the master key the store was sealed with; null when the record cannot be read.</param>
/// <param name="RecordedAt">When this home recorded it; null when the record cannot be read.</param>
internal sealed record SealLedgerEntry(string Store, string? KeyId, DateTimeOffset? RecordedAt);

/// <summary>
/// The home folder's record of the stores it has seen sealed: <c>HOME/sealed-stores/</c> (0700), one 0600 file per
/// store, named after a hash of the store's identity. It lives beside <c>master.key</c>, where someone who can write
/// the database cannot write, because the database cannot be trusted to say whether it was ever sealed: whoever
/// writes it can remove its seal columns, its sealed marker and its schema version together.
/// </summary>
/// <remarks>
/// A file's presence is the fact; its content (the identity, key id and time) only explains it, so a file that
/// cannot be parsed still counts as "sealed". Files are written to a private temporary name and renamed into place,
/// so two processes recording the same store at once both succeed and a reader never sees half a file.
/// </remarks>
internal sealed class SealLedger(string folder)
{
    /// <summary>The ledger's folder name inside a home.</summary>
    public const string FolderName = "sealed-stores";

    public string Folder { get; } = Path.GetFullPath(folder);

    /// <summary>The ledger of <paramref name="home"/>.</summary>
    public static SealLedger In(StoreHome home)
    {
        ArgumentNullException.ThrowIfNull(home);
        return new SealLedger(Path.Combine(home.Path, FolderName));
    }

    /// <summary>The file that records <paramref name="store"/>.</summary>
    public string PathFor(string store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return Path.Combine(Folder, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(store)))[..32]);
    }

    /// <summary>The record of <paramref name="store"/>, or null when this home has never seen it sealed.</summary>
    /// <exception cref="StoreException">The ledger exists but cannot be read (<c>home_unreadable</c>).</exception>
    public SealLedgerEntry? Find(string store)
    {
        var path = PathFor(store);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StoreException("home_unreadable",
                $"{path}, this home's record that the store {store} was sealed, cannot be read ({ex.Message}). Nothing was changed; fix its owner or mode (chmod 600) and try again.",
                innerException: ex);
        }

        try
        {
            if (JsonSerializer.Deserialize(text, StoreJsonContext.Default.SealLedgerEntry) is { } entry
                && string.Equals(entry.Store, store, StringComparison.Ordinal))
            {
                return entry;
            }
        }
        catch (JsonException)
        {
        }

        return new SealLedgerEntry(store, null, null); // there, but unreadable: still a record that it was sealed
    }

    /// <summary>
    /// Records that <paramref name="store"/> is sealed with the key <paramref name="keyId"/>, unless that is already
    /// recorded. Creates the ledger folder (0700) inside an existing home, never the home itself.
    /// </summary>
    /// <exception cref="IOException">The home is missing, or the file cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">The home or the ledger cannot be written.</exception>
    public void Record(string store, string keyId, DateTimeOffset at)
    {
        if (Find(store) is { } existing && string.Equals(existing.KeyId, keyId, StringComparison.Ordinal))
        {
            return;
        }

        var parent = Path.GetDirectoryName(Folder)!;
        if (!Directory.Exists(parent))
        {
            throw new DirectoryNotFoundException($"The home folder {parent} does not exist.");
        }

        if (!Directory.Exists(Folder))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(Folder);
            }
            else
            {
                Directory.CreateDirectory(Folder, StoreHome.FolderMode);
            }
        }

        var path = PathFor(store);
        var temp = $"{path}.tmp-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        try
        {
            using (var stream = new FileStream(temp, StoreHome.PrivateFileOptions(FileMode.CreateNew, FileAccess.Write, FileShare.None)))
            {
                JsonSerializer.Serialize(stream, new SealLedgerEntry(store, keyId, at), StoreJsonContext.Default.SealLedgerEntry);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }
}
