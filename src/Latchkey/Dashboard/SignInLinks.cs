using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Latchkey.Store;

namespace Latchkey.Dashboard;

/// <summary>
/// The one-time sign-in links <c>latchkey dashboard</c> opens: a random token that the command hands to the browser
/// in a URL fragment, and whose SHA-256 it leaves in the home folder (<c>ui-links/HASH</c>, 0600 in a 0700 folder)
/// for the gateway to find. The gateway redeems a token at most once, before its short expiry.
/// </summary>
/// <remarks>
/// <para><b>Why files.</b> The command and the gateway are two processes; the home folder is the one place both
/// own and nobody else can write, whatever the store backend is and whether the gateway has a Unix socket.</para>
/// <para><b>Concurrency.</b> Redeeming renames the file first: of two racing redemptions exactly one wins.</para>
/// <para><b>Security.</b> Only the hash is written; a 256-bit random token needs no salt. The token itself is
/// never logged.</para>
/// </remarks>
internal static class SignInLinks
{
    /// <summary>How long a link works.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(2);

    private const string Folder = "ui-links";

    /// <summary>How often <see cref="WaitForUseAsync"/> looks whether the link was used.</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>Mints a token valid for <see cref="Lifetime"/> and removes links that expired.</summary>
    public static string Mint(StoreHome home, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(time);
        var folder = EnsureFolder(home);
        var now = time.GetUtcNow();
        foreach (var stale in Directory.EnumerateFiles(folder))
        {
            if (ReadExpiry(stale) is not { } e || e <= now)
            {
                TryDelete(stale);
            }
        }

        var token = Base64Url(RandomNumberGenerator.GetBytes(32));
        var path = Path.Combine(folder, Hash(token));
        using (var stream = new FileStream(path, StoreHome.PrivateFileOptions(FileMode.CreateNew, FileAccess.Write)))
        {
            stream.Write(Encoding.ASCII.GetBytes((now + Lifetime).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)));
        }

        return token;
    }

    /// <summary>Redeems <paramref name="token"/>: true once, when it was minted for this home and has not expired.</summary>
    public static bool TryRedeem(StoreHome home, string? token, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(time);
        if (string.IsNullOrEmpty(token) || token.Length > 128)
        {
            return false;
        }

        var path = Path.Combine(home.Path, Folder, Hash(token));
        var claimed = path + ".used";
        try
        {
            File.Move(path, claimed); // atomic: a second redemption finds nothing to move
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return false;
        }

        var expiry = ReadExpiry(claimed);
        TryDelete(claimed);
        return expiry is { } e && time.GetUtcNow() < e;
    }

    /// <summary>Waits until <paramref name="token"/> is redeemed (its file is gone: a redemption renames it first)
    /// or expires, polling its file. True when it was redeemed (or tried); false when it expired unused, in which
    /// case its file is removed.</summary>
    public static async Task<bool> WaitForUseAsync(StoreHome home, string token, TimeProvider time, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(time);
        var path = Path.Combine(home.Path, Folder, Hash(token));
        var expiry = ReadExpiry(path);
        while (File.Exists(path))
        {
            if (expiry is not { } e || time.GetUtcNow() >= e)
            {
                TryDelete(path);
                return false;
            }

            await Task.Delay(PollInterval, time, ct).ConfigureAwait(false);
        }

        return true;
    }

    private static string EnsureFolder(StoreHome home)
    {
        home.EnsureReady();
        var folder = Path.Combine(home.Path, Folder);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
        }
        else
        {
            Directory.CreateDirectory(folder, StoreHome.FolderMode);
            File.SetUnixFileMode(folder, StoreHome.FolderMode);
        }

        return folder;
    }

    private static DateTimeOffset? ReadExpiry(string path)
    {
        try
        {
            return long.TryParse(File.ReadAllText(path), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // another process cleaned it up
        }
    }

    internal static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    internal static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
