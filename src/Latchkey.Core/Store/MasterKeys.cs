using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Latchkey.Store;

/// <summary>Where a home's master key lives.</summary>
internal enum MasterKeyPlace
{
    /// <summary>Nowhere yet: a new home.</summary>
    None,

    /// <summary>The home folder's <c>master.key</c> (the fallback: no OS key store, a headless server, or moved there).</summary>
    File,

    /// <summary>The OS key store (<see cref="IOsKeyStore"/>); the home keeps only a note of which one (<c>master.key.keychain</c>).</summary>
    Keychain,
}

/// <summary>The home's note that its key is in an OS key store: which one, and the key's public id (never the key).</summary>
/// <param name="Keychain">The store's <see cref="IOsKeyStore.Kind"/>.</param>
/// <param name="KeyId">The key's id (<see cref="SecretProtector.KeyId"/>), checked against what the store hands back.</param>
internal sealed record KeychainNote(string Keychain, string KeyId);

/// <summary>
/// A home's master key: found in <c>master.key</c> when that file exists, else in the OS key store when the home's
/// note (<c>master.key.keychain</c>) says so, else made anew, in the OS key store when one is reachable and
/// unlocked, else in <c>master.key</c>.
/// </summary>
/// <remarks>
/// <para>A key is made only for a home that has none anywhere: a note without its item, a locked keyring or one
/// out of reach is an error naming what to unlock, never a new key (which would orphan every sealed record and
/// break the seal ledger). A locked keyring is an error for a new home too, so nothing is created behind the
/// person's back in a place they did not expect.</para>
/// <para>New keys for a home are made under an exclusive lock on <c>master.key.lock</c>, so two processes starting
/// together agree on one key.</para>
/// </remarks>
internal sealed class MasterKeys(StoreHome home, IOsKeyStore? keychain)
{
    public StoreHome Home { get; } = home;

    /// <summary>The OS key store of this machine, or null (none, or <c>LATCHKEY_KEYCHAIN=off</c>).</summary>
    public IOsKeyStore? Keychain { get; } = keychain;

    /// <summary>The item's account in the OS key store: the home's full path.</summary>
    public string Account => Home.Path;

    public string NotePath => System.IO.Path.Combine(Home.Path, "master.key.keychain");

    private string LockPath => System.IO.Path.Combine(Home.Path, "master.key.lock");

    public static MasterKeys For(StoreHome home, Func<string, string?>? getEnvironment = null) =>
        new(home, OsKeyStores.ForThisMachine(getEnvironment));

    /// <summary>Where the key is, by the home's files alone (no key store is asked).</summary>
    public MasterKeyPlace Where() =>
        File.Exists(Home.KeyFilePath) ? MasterKeyPlace.File : File.Exists(NotePath) ? MasterKeyPlace.Keychain : MasterKeyPlace.None;

    /// <summary>Where the key is, in words, for <c>doctor</c> and <c>status</c>.</summary>
    public string Describe() => Where() switch
    {
        MasterKeyPlace.File => $"the file {Home.KeyFilePath}",
        MasterKeyPlace.Keychain => $"{DescribeKeychain(ReadNote()?.Keychain)} (item 'Latchkey master key', account {Account})",
        _ => Keychain is null ? "not made yet (the first 'latchkey add' makes it, in master.key)" : $"not made yet (the first 'latchkey add' makes it, in {Keychain.Description} when it is reachable and unlocked, else in master.key)",
    };

    /// <summary>The key, made on first use (see the class remarks). <paramref name="beforeCreating"/> may refuse a new key by throwing.</summary>
    /// <exception cref="StoreException">The key exists but cannot be had; the message says what to unlock or restore.</exception>
    public byte[] LoadOrCreate(Action? beforeCreating = null)
    {
        if (TryLoad() is { } key)
        {
            return key;
        }

        if (Keychain is null)
        {
            beforeCreating?.Invoke();
            return Home.LoadOrCreateMasterKey();
        }

        using (TakeLock())
        {
            if (TryLoad() is { } made)
            {
                return made;
            }

            byte[]? existing;
            try
            {
                existing = Keychain.Read(Account);
            }
            catch (OsKeyStoreException ex) when (ex.Failure == OsKeyStoreFailure.Unavailable)
            {
                // No keychain reachable (a headless server, no session bus): the key file, as before.
                beforeCreating?.Invoke();
                return Home.LoadOrCreateMasterKey();
            }
            catch (OsKeyStoreException ex)
            {
                throw Refused(ex, creating: true);
            }

            if (existing is not null)
            {
                // This home's item outlived its note (the note was lost, or the home was made anew at the same path).
                var found = Decode(existing);
                WriteNote(found);
                return found;
            }

            beforeCreating?.Invoke();
            var candidate = RandomNumberGenerator.GetBytes(32);
            try
            {
                StoreInKeychain(candidate);
                WriteNote(candidate);
                return candidate.ToArray();
            }
            finally
            {
                CryptographicOperations.ZeroMemory(candidate);
            }
        }
    }

    /// <summary>The key from where it lives now, or null for a home that has none; never makes one.</summary>
    /// <exception cref="StoreException">It should be in the OS key store but cannot be had from it.</exception>
    public byte[]? TryLoad()
    {
        if (Home.TryReadKeyFile() is { } fromFile)
        {
            return fromFile;
        }

        if (ReadNote() is not { } note)
        {
            return null;
        }

        var keychain = Keychain;
        if (keychain is null || !string.Equals(keychain.Kind, note.Keychain, StringComparison.Ordinal))
        {
            throw new StoreException("keychain_unavailable",
                $"The master key of {Home.Path} is in {DescribeKeychain(note.Keychain)} ({NotePath} says so), which this process cannot use" +
                (keychain is null ? $" ({OsKeyStores.SwitchVariable}=off, or no keychain on this system)" : string.Empty) +
                ". Nothing was changed and no new key was made. Run Latchkey where that keychain is reachable, or move the key to a file there first: latchkey key move --to file");
        }

        byte[]? secret;
        try
        {
            secret = keychain.Read(Account);
        }
        catch (OsKeyStoreException ex)
        {
            throw Refused(ex, creating: false);
        }

        if (secret is null)
        {
            throw new StoreException("key_missing",
                $"The master key of {Home.Path} should be in {keychain.Description} (item 'Latchkey master key', account {Account}), but it is not there. Nothing was changed and no new key was made. " +
                "Restore the keyring from a backup (or move master.key back into the home folder and delete master.key.keychain), then run 'latchkey doctor'.");
        }

        var key = Decode(secret);
        var id = SecretProtector.IdOf(key);
        if (!string.Equals(id, note.KeyId, StringComparison.Ordinal))
        {
            CryptographicOperations.ZeroMemory(key);
            throw new StoreException("key_invalid",
                $"The key {keychain.Description} holds for {Home.Path} (id {id}) is not the one this home was sealed with (id {note.KeyId}). Nothing was changed. Restore the right item from a backup of the keyring.");
        }

        return key;
    }

    /// <summary>
    /// Moves the key to <paramref name="target"/> with no moment where neither place holds it: the new place is
    /// written, read back and <paramref name="verify"/>-ed (it unseals the records with the key read back), and only
    /// then is the old place removed. Returns false when the key was there already.
    /// </summary>
    /// <exception cref="StoreException">The move cannot be made; nothing was removed.</exception>
    public bool MoveTo(MasterKeyPlace target, Func<byte[], string?> verify)
    {
        ArgumentNullException.ThrowIfNull(verify);
        var from = Where();
        if (from == target)
        {
            return false;
        }

        if (from == MasterKeyPlace.None)
        {
            throw new StoreException("key_missing", $"{Home.Path} has no master key yet; the first 'latchkey add' makes one (in the keychain when it is reachable).");
        }

        using (TakeLock())
        {
            var key = TryLoad()!;
            try
            {
                if (target == MasterKeyPlace.Keychain)
                {
                    MoveToKeychain(key, verify);
                }
                else
                {
                    MoveToFile(key, verify);
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }

        return true;
    }

    private void MoveToKeychain(byte[] key, Func<byte[], string?> verify)
    {
        if (Keychain is null)
        {
            throw new StoreException("keychain_unavailable",
                $"This system has no OS keychain Latchkey can use ({OsKeyStores.SwitchVariable}=off, or an unsupported system). Nothing was changed; the key stays in {Home.KeyFilePath}.");
        }

        var back = StoreInKeychain(key);
        try
        {
            if (verify(back) is { } problem)
            {
                Keychain.Delete(Account);
                throw new StoreException("key_move_failed", $"The key read back from {Keychain.Description} does not open the store: {problem}. Nothing was changed; the key stays in {Home.KeyFilePath}.");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(back);
        }

        // The note first: while master.key exists it wins, so a crash here leaves a working home.
        WriteNote(key);
        File.Delete(Home.KeyFilePath);
    }

    private void MoveToFile(byte[] key, Func<byte[], string?> verify)
    {
        Home.WriteMasterKeyFile(key);
        var back = Home.TryReadKeyFile() ?? throw new StoreException("key_unavailable", $"{Home.KeyFilePath} vanished while the key was moved. Nothing was removed from the keychain.");
        try
        {
            var problem = CryptographicOperations.FixedTimeEquals(back, key) ? verify(back) : "it is not the key that was written";
            if (problem is not null)
            {
                File.Delete(Home.KeyFilePath);
                throw new StoreException("key_move_failed", $"The key read back from {Home.KeyFilePath} does not open the store: {problem}. Nothing was changed; the key stays in the keychain.");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(back);
        }

        // master.key exists and wins from here on; then the note, then the item.
        File.Delete(NotePath);
        try
        {
            Keychain?.Delete(Account);
        }
        catch (OsKeyStoreException)
        {
            // The key is safe in the file; an item left behind is adopted again only by a home with no key.
        }
    }

    /// <summary>Writes <paramref name="key"/> to the OS key store and returns what it hands back, which must be the same key.</summary>
    private byte[] StoreInKeychain(byte[] key)
    {
        var keychain = Keychain!;
        var encoded = Encode(key);
        try
        {
            keychain.Write(Account, encoded);
            var back = keychain.Read(Account) ?? throw new OsKeyStoreException(OsKeyStoreFailure.Failed, "the item was not there right after it was written");
            var decoded = Decode(back);
            if (!CryptographicOperations.FixedTimeEquals(decoded, key))
            {
                CryptographicOperations.ZeroMemory(decoded);
                throw new OsKeyStoreException(OsKeyStoreFailure.Failed, "the item read back is not the key that was written");
            }

            return decoded;
        }
        catch (OsKeyStoreException ex)
        {
            throw Refused(ex, creating: true);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(encoded);
        }
    }

    private StoreException Refused(OsKeyStoreException ex, bool creating)
    {
        var keychain = Keychain!;
        var nothing = creating ? "Nothing was created." : "Nothing was changed and no new key was made.";
        return ex.Failure switch
        {
            OsKeyStoreFailure.Locked => new StoreException("keychain_locked",
                $"The master key of {Home.Path} {(creating ? "goes" : "is")} in {keychain.Description}, and it is locked ({ex.Message}). {nothing} {keychain.UnlockHint}, then try again." +
                (creating ? $" To keep this home's key in a file instead, set {OsKeyStores.SwitchVariable}=off." : string.Empty),
                retryable: true, innerException: ex),
            OsKeyStoreFailure.Unavailable => new StoreException("keychain_unavailable",
                $"The master key of {Home.Path} is in {keychain.Description}, which cannot be reached ({ex.Message}). {nothing} Start or unlock it ({keychain.UnlockHint}) and try again.",
                retryable: true, innerException: ex),
            _ => new StoreException("keychain_failed",
                $"{keychain.Description} could not be used for the master key of {Home.Path}: {ex.Message}. {nothing}", innerException: ex),
        };
    }

    private static string DescribeKeychain(string? kind) => kind switch
    {
        "secret-service" => "the Secret Service (GNOME Keyring or KWallet) on the D-Bus session bus",
        "macos-keychain" => "the macOS login Keychain",
        "dpapi" => "Windows DPAPI (your Windows account)",
        null => "the OS keychain",
        _ => $"the keychain '{kind}'",
    };

    private KeychainNote? ReadNote()
    {
        string text;
        try
        {
            text = File.ReadAllText(NotePath);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(text, StoreJsonContext.Default.KeychainNote)
                ?? throw new JsonException("empty");
        }
        catch (JsonException ex)
        {
            throw new StoreException("key_invalid", $"{NotePath} (which says where the master key is) is damaged: {ex.Message}. Nothing was changed. Restore it from a backup of the home folder.", innerException: ex);
        }
    }

    private void WriteNote(byte[] key)
    {
        var note = new KeychainNote(Keychain!.Kind, SecretProtector.IdOf(key));
        var temp = NotePath + $".tmp-{Environment.ProcessId}";
        using (var stream = new FileStream(temp, StoreHome.PrivateFileOptions(FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.WriteThrough)))
        {
            JsonSerializer.Serialize(stream, note, StoreJsonContext.Default.KeychainNote);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, NotePath, overwrite: true);
    }

    private FileStream TakeLock()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                return new FileStream(LockPath, StoreHome.PrivateFileOptions(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }
        }
    }

    private static byte[] Encode(ReadOnlySpan<byte> key) => Encoding.ASCII.GetBytes(Convert.ToBase64String(key));

    private byte[] Decode(byte[] secret)
    {
        try
        {
            var key = Convert.FromBase64String(Encoding.ASCII.GetString(secret));
            if (key.Length == 32)
            {
                return key;
            }

            CryptographicOperations.ZeroMemory(key);
        }
        catch (FormatException)
        {
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }

        throw new StoreException("key_invalid",
            $"The item for {Home.Path} in {Keychain?.Description ?? "the OS keychain"} is not a Latchkey master key (not 32 bytes in base64). Nothing was changed. Restore it from a backup of the keyring.");
    }
}
