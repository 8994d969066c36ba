using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Latchkey.Store;

namespace Latchkey.OAuth;

/// <summary>
/// A small local HTML page that sends the browser on to a URL carrying a secret (the dashboard's one-time sign-in
/// token, a sign-in's <c>state</c>), so that the URL itself is never an argument of any process: the opener is
/// given the page's <c>file://</c> URL, which carries nothing secret. Every user of the machine can read any
/// process's arguments (<c>/proc/PID/cmdline</c>); the page only its owner can read.
/// </summary>
/// <remarks>
/// <para><b>Security.</b> The page is created 0600 (exclusively, so nothing already there is reused) under a random
/// name in a 0700 folder of the owner: the folder it is given when that is the owner's (a folder in the home
/// folder), else a fresh private temporary folder. It sends the browser on with a <c>meta</c> refresh, a script
/// (<c>location.replace</c>, so the page is not left in the history) and a link for when neither runs; it asks for
/// no referrer, so the next request never names the page (browsers send none from <c>file:</c> anyway, and a URL's
/// fragment is never part of a referrer). <see cref="Dispose"/> deletes it; the name carries its expiry, so a page
/// left behind by a process that was killed is deleted by the next <see cref="Write"/> after it expired.</para>
/// </remarks>
internal sealed class RedirectPage : IDisposable
{
    private const string Prefix = "open-";
    private readonly string? _ownedFolder;

    private RedirectPage(string path, string? ownedFolder)
    {
        Path = path;
        _ownedFolder = ownedFolder;
    }

    /// <summary>Where the page is.</summary>
    public string Path { get; }

    /// <summary>The page's <c>file://</c> URL, the one thing handed to the opener.</summary>
    public Uri FileUrl => new(Path);

    /// <summary>Writes a page that sends the browser to <paramref name="target"/>, in <paramref name="folder"/> (made
    /// 0700) when it can be the owner's private folder, else in a fresh private temporary folder.</summary>
    /// <param name="target">The URL to go on to: http(s), checked by the caller.</param>
    /// <param name="folder">The preferred folder (inside the Latchkey home folder), or null for a temporary one.</param>
    /// <param name="lifetime">How long the page is needed at most; after that any later <see cref="Write"/> in the
    /// same folder deletes it, should its owner not have.</param>
    /// <param name="time">The clock the expiry is reckoned by.</param>
    public static RedirectPage Write(Uri target, string? folder, TimeSpan lifetime, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(time);
        var now = time.GetUtcNow();
        var name = $"{Prefix}{(now + lifetime).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}.html";
        var html = Encoding.UTF8.GetBytes(Html(target));
        if (folder is not null && TryPrivateFolder(folder))
        {
            SweepExpired(folder, now);
            try
            {
                return new RedirectPage(WriteFile(System.IO.Path.Combine(folder, name), html), null);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // fall through to a temporary folder
            }
        }

        var temporary = Directory.CreateTempSubdirectory("latchkey-").FullName; // mkdtemp(3): 0700, this user's
        try
        {
            return new RedirectPage(WriteFile(System.IO.Path.Combine(temporary, name), html), temporary);
        }
        catch
        {
            TryDelete(temporary, recursive: true);
            throw;
        }
    }

    /// <summary>The page's HTML: a meta refresh, a script and a link to <paramref name="target"/>, no referrer.</summary>
    internal static string Html(Uri target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var url = target.AbsoluteUri;
        var attribute = WebUtility.HtmlEncode(url);
        return $"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="referrer" content="no-referrer">
            <meta http-equiv="refresh" content="0; url={attribute}">
            <title>Latchkey</title>
            </head>
            <body>
            <p>Opening <a href="{attribute}" rel="noreferrer">{WebUtility.HtmlEncode(target.GetLeftPart(UriPartial.Authority))}</a>&hellip;</p>
            <script>location.replace("{JavaScriptEncoder.Default.Encode(url)}");</script>
            </body>
            </html>

            """;
    }

    /// <summary>Deletes the page (and the temporary folder it was written in, if any).</summary>
    public void Dispose()
    {
        if (_ownedFolder is not null)
        {
            TryDelete(_ownedFolder, recursive: true);
        }
        else
        {
            TryDelete(Path, recursive: false);
        }
    }

    private static string WriteFile(string path, byte[] html)
    {
        using (var stream = new FileStream(path, StoreHome.PrivateFileOptions(FileMode.CreateNew, FileAccess.Write, FileShare.None)))
        {
            stream.Write(html);
        }

        return path;
    }

    /// <summary>Makes <paramref name="folder"/> (whose parent must exist) and sets it 0700; false when it is not
    /// this user's to make private (then a temporary folder is used instead).</summary>
    private static bool TryPrivateFolder(string folder)
    {
        try
        {
            if (System.IO.Path.GetDirectoryName(folder) is not { } parent || !Directory.Exists(parent))
            {
                return false;
            }

            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(folder);
                return true;
            }

            Directory.CreateDirectory(folder, StoreHome.FolderMode);
            File.SetUnixFileMode(folder, StoreHome.FolderMode); // fails unless the folder is this user's
            return File.GetUnixFileMode(folder) == StoreHome.FolderMode && !new DirectoryInfo(folder).Attributes.HasFlag(FileAttributes.ReparsePoint);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void SweepExpired(string folder, DateTimeOffset now)
    {
        try
        {
            foreach (var page in Directory.EnumerateFiles(folder, Prefix + "*.html"))
            {
                var parts = System.IO.Path.GetFileNameWithoutExtension(page)[Prefix.Length..].Split('-');
                if (parts.Length != 2 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var ms) || DateTimeOffset.FromUnixTimeMilliseconds(ms) <= now)
                {
                    TryDelete(page, recursive: false);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // tidying only
        }
    }

    private static void TryDelete(string path, bool recursive)
    {
        try
        {
            if (recursive)
            {
                Directory.Delete(path, recursive: true);
            }
            else
            {
                File.Delete(path);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // already gone, or another process tidied it
        }
    }
}
