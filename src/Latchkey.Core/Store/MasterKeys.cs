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

/// <summary>The home's note that its key is in an OS key store: which one, the item's account, and the key's public id (never the key).</summary>
/// <param name="Keychain">The store's <see cref="IOsKeyStore.Kind"/>.</param>
/// <param name="KeyId">The key's id (<see cref="SecretProtector.KeyId"/>), checked against what the store hands back.</param>
/// <param name="Account">
/// The item's account (the home's <see cref="StoreHome.CanonicalPath"/> when it was made), so the item is found however
/// the home is reached later; null in a note written before it was recorded (then the canonical path, then the path as
/// given are tried).
/// </param>
internal sealed record KeychainNote(string Keychain, string KeyId, string? Account = null);

/// <summary>The outcome of <see cref="MasterKeys.MoveTo"/>.</summary>
/// <param name="Moved">False when the key was there already.</param>
/// <param name="Warning">What was left behind and how to remove it (a copy of the key still in the keychain), or null.</param>
internal sealed record KeyMove(bool Moved, string? Warning);

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
/// <para>Every first use takes an exclusive lock on <c>master.key.lock</c> and looks again under it: two processes
/// starting together agree on one key, whether they would put it in the keychain or in the file
/// (<c>LATCHKEY_KEYCHAIN=off</c> decides only where a new key goes; a key the note says is in the keychain is read
/// from there either way).</para>
/// <para>An item found in the keychain for a home with no note (the note was lost, or the home was made anew at the
/// same path) is adopted only when the caller's check allows it: beside sealed data, only if it is the key that data
/// was sealed with.</para>
/// </remarks>
internal sealed class MasterKeys(StoreHome home, IOsKeyStore? keychain, IOsKeyStore? platform)
{
    private const string ItemName = "'Latchkey master key'";

    public StoreHome Home { get; } = home;

    /// <summary>Where a new key goes: the OS key store of this machine, or null (none, or <c>LATCHKEY_KEYCHAIN=off</c>).</summary>
    public IOsKeyStore? Keychain { get; } = keychain;

    /// <summary>The OS key store of this machine whatever <c>LATCHKEY_KEYCHAIN</c> says: where a noted key is read from.</summary>
    public IOsKeyStore? Platform { get; } = platform ?? keychain;

    /// <summary>The account a new item gets: the home's path with links resolved and no trailing separator.</summary>
    public string CanonicalAccount => Home.CanonicalPath;

    public string NotePath => System.IO.Path.Combine(Home.Path, "master.key.keychain");

    private string LockPath => System.IO.Path.Combine(Home.Path, "master.key.lock");

    public static MasterKeys For(StoreHome home, Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var platform = OsKeyStores.OfThisPlatform(getEnvironment);
        return new(home, OsKeyStores.IsOff(getEnvironment) ? null : platform, platform);
    }

    /// <summary>Where the key is, by the home's files alone (no key store is asked).</summary>
    public MasterKeyPlace Where() =>
        File.Exists(Home.KeyFilePath) ? MasterKeyPlace.File : File.Exists(NotePath) ? MasterKeyPlace.Keychain : MasterKeyPlace.None;

    /// <summary>Where the key is, in words, for <c>doctor</c> and <c>status</c>.</summary>
    public string Describe() => Where() switch
    {
        MasterKeyPlace.File => $"the file {Home.KeyFilePath}",
        MasterKeyPlace.Keychain => ReadNote() is { } note
            ? $"{DescribeKeychain(note.Keychain)} (item {ItemName}, account {note.Account ?? CanonicalAccount})"
            : DescribeKeychain(null),
        _ => Keychain is null ? "not made yet (the first 'latchkey add' makes it, in master.key)" : $"not made yet (the first 'latchkey add' makes it, in {Keychain.Description} when it is reachable and unlocked, else in master.key)",
    };

    /// <summary>
    /// The key, made on first use (see the class remarks). <paramref name="beforeCreating"/> may refuse a new key by
    /// throwing. <paramref name="adoptionProblem"/> is asked, with the key id of an item found in the keychain for a
    /// home that has no note, why it must not be adopted (null: it may be); without it, any such item is adopted.
    /// </summary>
    /// <exception cref="StoreException">The key exists but cannot be had (the message says what to unlock or restore), or an item found must not be adopted (<c>key_mismatch</c>).</exception>
    public byte[] LoadOrCreate(Action? beforeCreating = null, Func<string, string?>? adoptionProblem = null)
    {
        if (Locate(recordAccount: true) is { } key)
        {
            return key.Key;
        }

        using (TakeLock())
        {
            // Another process may have made the key, in either place, since the first look.
            if (Locate(recordAccount: true) is { } made)
            {
                return made.Key;
            }

            if (Keychain is null)
            {
                beforeCreating?.Invoke();
                return Home.LoadOrCreateMasterKey();
            }

            (string Account, byte[] Secret)? existing;
            try
            {
                existing = Find(Keychain, AccountsToTry());
            }
            catch (OsKeyStoreException ex) when (ex.Failure == OsKeyStoreFailure.Unavailable)
            {
                // No keychain reachable (a headless server, no session bus): the key file, as before.
                beforeCreating?.Invoke();
                return Home.LoadOrCreateMasterKey();
            }
            catch (OsKeyStoreException ex)
            {
                throw Refused(Keychain, ex, creating: true);
            }

            if (existing is { } item)
            {
                return Adopt(Keychain, item.Account, item.Secret, adoptionProblem);
            }

            beforeCreating?.Invoke();
            var candidate = RandomNumberGenerator.GetBytes(32);
            try
            {
                var account = CanonicalAccount;
                CryptographicOperations.ZeroMemory(StoreInKeychain(Keychain, account, candidate));
                WriteNote(candidate, Keychain.Kind, account);
                return candidate.ToArray();
            }
            finally
            {
                CryptographicOperations.ZeroMemory(candidate);
            }
        }
    }

    /// <summary>The key from where it lives now, or null for a home that has none; never makes one, never writes.</summary>
    /// <exception cref="StoreException">It should be in the OS key store but cannot be had from it.</exception>
    public byte[]? TryLoad() => Locate(recordAccount: false)?.Key;

    /// <summary>An item found for a home without a note: checked, then recorded in a new note.</summary>
    private byte[] Adopt(IOsKeyStore keychain, string account, byte[] secret, Func<string, string?>? adoptionProblem)
    {
        var found = Decode(secret, keychain, account);
        var id = SecretProtector.IdOf(found);
        if (adoptionProblem?.Invoke(id) is { } problem)
        {
            CryptographicOperations.ZeroMemory(found);
            throw new StoreException("key_mismatch",
                $"{keychain.Description} holds an item for {Home.Path} (account {account}, key id {id}), but this home has no note of it ({NotePath} is missing) and {problem}. " +
                "It is not this home's key: an item left from an earlier home at this path, or one another program running as you put there. Nothing was changed and the item was not used. " +
                $"Restore this home's master.key or master.key.keychain from the backup of the home folder (the one saved with latchkey.db). If the item is a stale one, remove it: {keychain.RemoveCommand(account)}");
        }

        WriteNote(found, keychain.Kind, account);
        return found;
    }

    /// <summary>Where the key is and the key, or null when the home has none yet.</summary>
    /// <param name="recordAccount">Whether a note from before accounts were recorded gets the account the item was found under.</param>
    private Located? Locate(bool recordAccount)
    {
        if (Home.TryReadKeyFile() is { } fromFile)
        {
            return new Located(fromFile, null, null);
        }

        if (ReadNote() is not { } note)
        {
            return null;
        }

        var keychain = Platform;
        if (keychain is null || !string.Equals(keychain.Kind, note.Keychain, StringComparison.Ordinal))
        {
            throw new StoreException("keychain_unavailable",
                $"The master key of {Home.Path} is in {DescribeKeychain(note.Keychain)} ({NotePath} says so), which this system does not have. " +
                "Nothing was changed and no new key was made. Run Latchkey where that keychain is, or move the key to a file there first: latchkey key move --to file");
        }

        var accounts = note.Account is { } recorded ? [recorded] : AccountsToTry();
        (string Account, byte[] Secret)? item;
        try
        {
            item = Find(keychain, accounts);
        }
        catch (OsKeyStoreException ex)
        {
            throw Refused(keychain, ex, creating: false);
        }

        if (item is not { } found)
        {
            throw new StoreException("key_missing",
                $"The master key of {Home.Path} should be in {keychain.Description} (item {ItemName}, account {string.Join(" or ", accounts)}), but it is not there. Nothing was changed and no new key was made. " +
                (note.Account is null
                    ? "This home's note is from a Latchkey that did not record the item's account: if the home was made through another path (a symbolic link to it, or another spelling), run Latchkey once with --home set to that path, which records it. Otherwise restore"
                    : "Restore") +
                " the keyring from a backup (or move master.key back into the home folder and delete master.key.keychain), then run 'latchkey doctor'.");
        }

        var key = Decode(found.Secret, keychain, found.Account);
        var id = SecretProtector.IdOf(key);
        if (!string.Equals(id, note.KeyId, StringComparison.Ordinal))
        {
            CryptographicOperations.ZeroMemory(key);
            throw new StoreException("key_invalid",
                $"The key {keychain.Description} holds for {Home.Path} (account {found.Account}, id {id}) is not the one this home was sealed with (id {note.KeyId}). Nothing was changed. Restore the right item from a backup of the keyring.");
        }

        if (recordAccount && note.Account is null)
        {
            WriteNote(key, note.Keychain, found.Account);
        }

        return new Located(key, keychain, found.Account);
    }

    /// <summary>Where to look for an item no note names (one made before notes recorded the account, or a note that is lost): the canonical path, then the path as given, each with and without a trailing separator.</summary>
    private string[] AccountsToTry()
    {
        var canonical = CanonicalAccount;
        var given = Home.Path;
        var givenTrimmed = System.IO.Path.TrimEndingDirectorySeparator(given);
        var separator = System.IO.Path.DirectorySeparatorChar;
        return new[] { canonical, given, givenTrimmed, givenTrimmed + separator, canonical + separator }
            .Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary>The first of <paramref name="accounts"/> that has an item, with its secret; null when none has.</summary>
    private static (string Account, byte[] Secret)? Find(IOsKeyStore keychain, IEnumerable<string> accounts)
    {
        foreach (var account in accounts)
        {
            if (keychain.Read(account) is { } secret)
            {
                return (account, secret);
            }
        }

        return null;
    }

    /// <summary>
    /// Moves the key to <paramref name="target"/> with no moment where neither place holds it: the new place is
    /// written, read back and <paramref name="verify"/>-ed (it unseals the records with the key read back), and only
    /// then is the old place removed. A copy that could not be removed from the keychain is reported in
    /// <see cref="KeyMove.Warning"/>.
    /// </summary>
    /// <exception cref="StoreException">The move cannot be made; nothing was removed.</exception>
    public KeyMove MoveTo(MasterKeyPlace target, Func<byte[], string?> verify)
    {
        ArgumentNullException.ThrowIfNull(verify);
        var from = Where();
        if (from == target)
        {
            return new KeyMove(false, null);
        }

        if (from == MasterKeyPlace.None)
        {
            throw new StoreException("key_missing", $"{Home.Path} has no master key yet; the first 'latchkey add' makes one (in the keychain when it is reachable).");
        }

        using (TakeLock())
        {
            var located = Locate(recordAccount: false)!;
            try
            {
                return new KeyMove(true, target == MasterKeyPlace.Keychain
                    ? MoveToKeychain(located.Key, verify)
                    : MoveToFile(located, verify));
            }
            finally
            {
                CryptographicOperations.ZeroMemory(located.Key);
            }
        }
    }

    private string? MoveToKeychain(byte[] key, Func<byte[], string?> verify)
    {
        if (Keychain is null)
        {
            throw new StoreException("keychain_unavailable",
                $"This system has no OS keychain Latchkey can use ({OsKeyStores.SwitchVariable}=off, or an unsupported system). Nothing was changed; the key stays in {Home.KeyFilePath}.");
        }

        var account = CanonicalAccount;
        var back = StoreInKeychain(Keychain, account, key);
        try
        {
            if (verify(back) is { } problem)
            {
                Keychain.Delete(account);
                throw new StoreException("key_move_failed", $"The key read back from {Keychain.Description} does not open the store: {problem}. Nothing was changed; the key stays in {Home.KeyFilePath}.");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(back);
        }

        // The note first: while master.key exists it wins, so a crash here leaves a working home.
        WriteNote(key, Keychain.Kind, account);
        File.Delete(Home.KeyFilePath);
        return null;
    }

    private string? MoveToFile(Located from, Func<byte[], string?> verify)
    {
        var key = from.Key;
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
        if (from.Keychain is not { } keychain || from.Account is not { } account)
        {
            return null;
        }

        if (!string.Equals(StoreHome.Canonicalize(account), CanonicalAccount, StringComparison.Ordinal))
        {
            // The note named an item made for another path (this home was copied or moved): another home may use it.
            return $"The key's item in {keychain.Description} (account {account}) was made for another path than this home's ({CanonicalAccount}), so it was left in place: a home there may still use it. " +
                $"If none does, remove it: {keychain.RemoveCommand(account)}";
        }

        try
        {
            keychain.Delete(account);
            return null;
        }
        catch (OsKeyStoreException ex)
        {
            // The key is safe in the file, but a copy of it is still in the keychain: the person must know, and remove it.
            return $"The copy of the key in {keychain.Description} (item {ItemName}, account {account}) could not be removed ({ex.Message}), so the keychain still holds this home's key. " +
                $"Remove it: {keychain.RemoveCommand(account)}";
        }
    }

    /// <summary>Writes <paramref name="key"/> to <paramref name="keychain"/> and returns what it hands back, which must be the same key.</summary>
    private byte[] StoreInKeychain(IOsKeyStore keychain, string account, byte[] key)
    {
        var encoded = Encode(key);
        try
        {
            keychain.Write(account, encoded);
            var back = keychain.Read(account) ?? throw new OsKeyStoreException(OsKeyStoreFailure.Failed, "the item was not there right after it was written");
            var decoded = Decode(back, keychain, account);
            if (!CryptographicOperations.FixedTimeEquals(decoded, key))
            {
                CryptographicOperations.ZeroMemory(decoded);
                throw new OsKeyStoreException(OsKeyStoreFailure.Failed, "the item read back is not the key that was written");
            }

            return decoded;
        }
        catch (OsKeyStoreException ex)
        {
            throw Refused(keychain, ex, creating: true);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(encoded);
        }
    }

    private StoreException Refused(IOsKeyStore keychain, OsKeyStoreException ex, bool creating)
    {
        var nothing = creating ? "Nothing was created." : "Nothing was changed and no new key was made.";
        return ex.Failure switch
        {
            OsKeyStoreFailure.Locked => new StoreException("keychain_locked",
                $"The master key of {Home.Path} {(creating ? "goes" : "is")} in {keychain.Description}, and it is locked ({ex.Message}). {nothing} {keychain.UnlockHint}, then try again." +
                (creating ? $" To keep this home's key in a file instead, set {OsKeyStores.SwitchVariable}=off." : string.Empty),
                retryable: true, innerException: ex),
            OsKeyStoreFailure.Unavailable => new StoreException("keychain_unavailable",
                $"The master key of {Home.Path} {(creating ? "goes" : "is")} in {keychain.Description}, which this process cannot reach: {ex.Message}. {nothing} {keychain.ReachHint}, then try again." +
                (creating ? string.Empty : " To keep this home's key in a file instead, run 'latchkey key move --to file' once where the keychain is reachable."),
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

    private void WriteNote(byte[] key, string kind, string account)
    {
        var note = new KeychainNote(kind, SecretProtector.IdOf(key), account);
        var temp = NotePath + $".tmp-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        try
        {
            using (var stream = new FileStream(temp, StoreHome.PrivateFileOptions(FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.WriteThrough)))
            {
                JsonSerializer.Serialize(stream, note, StoreJsonContext.Default.KeychainNote);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, NotePath, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
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

    private byte[] Decode(byte[] secret, IOsKeyStore keychain, string account)
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
            $"The item for {Home.Path} (account {account}) in {keychain.Description} is not a Latchkey master key (not 32 bytes in base64). Nothing was changed. Restore it from a backup of the keyring.");
    }
}

/// <summary>A key and where it was found: the keychain and account, or neither for <c>master.key</c>.</summary>
internal sealed record Located(byte[] Key, IOsKeyStore? Keychain, string? Account);
