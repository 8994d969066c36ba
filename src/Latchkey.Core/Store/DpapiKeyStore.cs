using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Text;

namespace Latchkey.Store;

/// <summary>
/// Windows: the key sealed with DPAPI for the current user (<see cref="ProtectedData"/>, scope CurrentUser), kept
/// in <c>%LOCALAPPDATA%\Latchkey\keys\</c> (one file per home, named by a hash of its path), outside the home
/// folder: a copy of the home, or of that file, opens only under the same Windows account.
/// </summary>
[SupportedOSPlatform("windows")]
internal sealed class DpapiKeyStore : IOsKeyStore
{
    private static readonly byte[] Entropy = "latchkey/master-key/v1"u8.ToArray();

    public string Kind => "dpapi";

    public string Description => "Windows DPAPI (your Windows account)";

    public string UnlockHint => "Log in to Windows as the user who made the key (DPAPI opens it only for that account)";

    public string ReachHint => "Run Latchkey on Windows as the user who made the key";

    public string RemoveCommand(string account) => $"del \"{PathFor(account)}\"";

    public byte[]? Read(string account)
    {
        Ensure();
        byte[] sealedKey;
        try
        {
            sealedKey = File.ReadAllBytes(PathFor(account));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        try
        {
            return ProtectedData.Unprotect(sealedKey, Entropy, DataProtectionScope.CurrentUser);
        }
        catch (CryptographicException ex)
        {
            throw new OsKeyStoreException(OsKeyStoreFailure.Locked, $"DPAPI cannot open the key for this Windows account ({ex.Message})", ex);
        }
    }

    public void Write(string account, ReadOnlySpan<byte> secret)
    {
        Ensure();
        var path = PathFor(account);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var sealedKey = ProtectedData.Protect(secret.ToArray(), Entropy, DataProtectionScope.CurrentUser);
        var temp = path + ".tmp-" + Environment.ProcessId;
        File.WriteAllBytes(temp, sealedKey);
        File.Move(temp, path, overwrite: true);
    }

    public bool Delete(string account)
    {
        Ensure();
        var path = PathFor(account);
        if (!File.Exists(path))
        {
            return false;
        }

        File.Delete(path);
        return true;
    }

    private static void Ensure()
    {
        if (!OperatingSystem.IsWindows())
        {
            throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, "DPAPI exists only on Windows");
        }
    }

    private static string PathFor(string account)
    {
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(account.ToUpperInvariant())))[..32];
        return System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "Latchkey", "keys", id + ".dpapi");
    }
}
