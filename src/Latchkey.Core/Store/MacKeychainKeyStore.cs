using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;

namespace Latchkey.Store;

/// <summary>
/// The macOS login Keychain, through the Security framework (a generic password, service <c>latchkey</c>, account
/// the home's path): <c>security find-generic-password -s latchkey -a PATH</c> shows it. The key never passes
/// through a command line.
/// </summary>
[SupportedOSPlatform("macos")]
internal sealed partial class MacKeychainKeyStore : IOsKeyStore
{
    private const string SecurityFramework = "/System/Library/Frameworks/Security.framework/Security";
    private const string CoreFoundation = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation";
    private const int ErrSecSuccess = 0;
    private const int ErrSecItemNotFound = -25300;
    private const int ErrSecInteractionNotAllowed = -25308;
    private const int ErrSecAuthFailed = -25293;
    private const int ErrSecNoSuchKeychain = -25294;
    private const int ErrSecNotAvailable = -25291;
    private const int ErrSecUserCanceled = -128;

    private static readonly byte[] ServiceName = "latchkey"u8.ToArray();

    public string Kind => "macos-keychain";

    public string Description => "the macOS login Keychain";

    public string UnlockHint => "Unlock the login keychain (log in to the Mac, or run: security unlock-keychain login.keychain-db)";

    public string ReachHint => "Run Latchkey in your own login session on this Mac (a daemon or another user's session cannot reach your login Keychain)";

    public string RemoveCommand(string account) => $"security delete-generic-password -s latchkey -a {OsKeyStores.ShellQuote(account)}";

    public byte[]? Read(string account)
    {
        EnsureMac();
        var name = Encoding.UTF8.GetBytes(account);
        var status = SecKeychainFindGenericPassword(IntPtr.Zero, (uint)ServiceName.Length, ServiceName, (uint)name.Length, name, out var length, out var data, out var item);
        try
        {
            if (status == ErrSecItemNotFound)
            {
                return null;
            }

            Check(status, "read");
            var secret = new byte[length];
            Marshal.Copy(data, secret, 0, (int)length);
            return secret;
        }
        finally
        {
            if (data != IntPtr.Zero)
            {
                _ = SecKeychainItemFreeContent(IntPtr.Zero, data);
            }

            Release(item);
        }
    }

    public void Write(string account, ReadOnlySpan<byte> secret)
    {
        EnsureMac();
        var name = Encoding.UTF8.GetBytes(account);
        var value = secret.ToArray();
        try
        {
            var status = SecKeychainFindGenericPassword(IntPtr.Zero, (uint)ServiceName.Length, ServiceName, (uint)name.Length, name, out _, out _, out var existing);
            try
            {
                if (status == ErrSecSuccess)
                {
                    Check(SecKeychainItemModifyAttributesAndData(existing, IntPtr.Zero, (uint)value.Length, value), "update");
                    return;
                }

                if (status != ErrSecItemNotFound)
                {
                    Check(status, "look up");
                }
            }
            finally
            {
                Release(existing);
            }

            Check(SecKeychainAddGenericPassword(IntPtr.Zero, (uint)ServiceName.Length, ServiceName, (uint)name.Length, name, (uint)value.Length, value, out var added), "add");
            Release(added);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(value);
        }
    }

    public bool Delete(string account)
    {
        EnsureMac();
        var name = Encoding.UTF8.GetBytes(account);
        var status = SecKeychainFindGenericPassword(IntPtr.Zero, (uint)ServiceName.Length, ServiceName, (uint)name.Length, name, out _, out _, out var item);
        try
        {
            if (status == ErrSecItemNotFound)
            {
                return false;
            }

            Check(status, "look up");
            Check(SecKeychainItemDelete(item), "delete");
            return true;
        }
        finally
        {
            Release(item);
        }
    }

    private static void EnsureMac()
    {
        if (!OperatingSystem.IsMacOS())
        {
            throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, "the macOS Keychain exists only on macOS");
        }
    }

    private static void Check(int status, string what)
    {
        switch (status)
        {
            case ErrSecSuccess:
                return;
            case ErrSecInteractionNotAllowed or ErrSecAuthFailed or ErrSecUserCanceled:
                throw new OsKeyStoreException(OsKeyStoreFailure.Locked, $"the login keychain is locked (OSStatus {status} on {what})");
            case ErrSecNoSuchKeychain or ErrSecNotAvailable:
                throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, $"there is no login keychain (OSStatus {status} on {what})");
            default:
                throw new OsKeyStoreException(OsKeyStoreFailure.Failed, $"the Keychain refused to {what} the item (OSStatus {status})");
        }
    }

    private static void Release(IntPtr reference)
    {
        if (reference != IntPtr.Zero)
        {
            CFRelease(reference);
        }
    }

    [LibraryImport(SecurityFramework)]
    private static partial int SecKeychainFindGenericPassword(IntPtr keychainOrArray, uint serviceNameLength, byte[] serviceName, uint accountNameLength, byte[] accountName,
        out uint passwordLength, out IntPtr passwordData, out IntPtr itemRef);

    [LibraryImport(SecurityFramework)]
    private static partial int SecKeychainAddGenericPassword(IntPtr keychain, uint serviceNameLength, byte[] serviceName, uint accountNameLength, byte[] accountName,
        uint passwordLength, byte[] passwordData, out IntPtr itemRef);

    [LibraryImport(SecurityFramework)]
    private static partial int SecKeychainItemModifyAttributesAndData(IntPtr itemRef, IntPtr attrList, uint length, byte[] data);

    [LibraryImport(SecurityFramework)]
    private static partial int SecKeychainItemDelete(IntPtr itemRef);

    [LibraryImport(SecurityFramework)]
    private static partial int SecKeychainItemFreeContent(IntPtr attrList, IntPtr data);

    [LibraryImport(CoreFoundation)]
    private static partial void CFRelease(IntPtr cf);
}
