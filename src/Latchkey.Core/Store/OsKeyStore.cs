namespace Latchkey.Store;

/// <summary>
/// An operating system's store for a user's secrets, holding the master key in place of the home folder's
/// <c>master.key</c>: the Secret Service on Linux (<see cref="SecretServiceKeyStore"/>: GNOME Keyring, KWallet),
/// the login Keychain on macOS (<see cref="MacKeychainKeyStore"/>), DPAPI on Windows (<see cref="DpapiKeyStore"/>).
/// One item per home folder, found by its account: the home's path with symbolic links resolved and no trailing
/// separator (<see cref="StoreHome.CanonicalPath"/>), recorded in the home's note (<c>master.key.keychain</c>).
/// </summary>
/// <remarks>
/// Every member throws <see cref="OsKeyStoreException"/> when the store cannot be used, saying whether it is out of
/// reach (<see cref="OsKeyStoreFailure.Unavailable"/>: the key file may be used instead, for a home that has no key
/// yet), locked (<see cref="OsKeyStoreFailure.Locked"/>: the person unlocks it; never a reason for a new key) or
/// failed otherwise. The secret is the key in base64 (text every store and its tools show as it is).
/// </remarks>
internal interface IOsKeyStore
{
    /// <summary>A short stable name for <c>--json</c> and the home's record of where the key is: <c>secret-service</c>, <c>macos-keychain</c>, <c>dpapi</c>.</summary>
    string Kind { get; }

    /// <summary>What a person calls it, e.g. "the Secret Service (GNOME Keyring or KWallet)".</summary>
    string Description { get; }

    /// <summary>What to unlock when it is locked, as an instruction.</summary>
    string UnlockHint { get; }

    /// <summary>What to do when it cannot be reached at all (no session, no service), as an instruction.</summary>
    string ReachHint { get; }

    /// <summary>The command a person runs to remove the item of <paramref name="account"/> by hand.</summary>
    string RemoveCommand(string account);

    /// <summary>The secret stored for <paramref name="account"/>, or null when there is none.</summary>
    byte[]? Read(string account);

    /// <summary>Stores <paramref name="secret"/> for <paramref name="account"/>, replacing what was there.</summary>
    void Write(string account, ReadOnlySpan<byte> secret);

    /// <summary>Removes the secret of <paramref name="account"/>; false when there was none.</summary>
    bool Delete(string account);
}

/// <summary>Why an OS key store could not be used.</summary>
internal enum OsKeyStoreFailure
{
    /// <summary>Not there or not answering (no session bus, no Secret Service, no login keychain).</summary>
    Unavailable,

    /// <summary>There, but locked: the person must unlock it.</summary>
    Locked,

    /// <summary>There and unlocked, but the operation failed.</summary>
    Failed,
}

/// <summary>An OS key store could not be used; the message says what happened, never the secret.</summary>
internal sealed class OsKeyStoreException(OsKeyStoreFailure failure, string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    public OsKeyStoreFailure Failure { get; } = failure;
}

/// <summary>The OS key store of this machine, if it has one Latchkey can use.</summary>
internal static class OsKeyStores
{
    /// <summary>
    /// <c>LATCHKEY_KEYCHAIN=off</c>: a new key goes to <c>master.key</c>, never to the OS key store. A home whose note
    /// says its key is in the key store is still read from there: processes that disagree about the switch share one key.
    /// </summary>
    public const string SwitchVariable = "LATCHKEY_KEYCHAIN";

    /// <summary>
    /// Where a new key goes: this platform's store, or null when there is none or <c>LATCHKEY_KEYCHAIN=off</c>.
    /// </summary>
    public static IOsKeyStore? ForThisMachine(Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        return IsOff(getEnvironment) ? null : OfThisPlatform(getEnvironment);
    }

    /// <summary>Whether <c>LATCHKEY_KEYCHAIN=off</c> is set.</summary>
    public static bool IsOff(Func<string, string?> getEnvironment) =>
        string.Equals(getEnvironment(SwitchVariable)?.Trim(), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// This platform's store whatever <c>LATCHKEY_KEYCHAIN</c> says, or null when it has none: where a key that a
    /// home's note says is in the keychain is read from (the switch only decides where a new key goes). On Linux the
    /// Secret Service is looked for only on the bus <c>DBUS_SESSION_BUS_ADDRESS</c> names: no session bus, no keychain.
    /// </summary>
    public static IOsKeyStore? OfThisPlatform(Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        if (OperatingSystem.IsWindows())
        {
            return new DpapiKeyStore();
        }

        if (OperatingSystem.IsMacOS())
        {
            return new MacKeychainKeyStore();
        }

        return OperatingSystem.IsLinux() || OperatingSystem.IsFreeBSD()
            ? new SecretServiceKeyStore(getEnvironment("DBUS_SESSION_BUS_ADDRESS"))
            : null;
    }

    /// <summary><paramref name="text"/> in single quotes for a POSIX shell (for commands printed as advice).</summary>
    public static string ShellQuote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
