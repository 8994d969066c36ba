using System.Diagnostics;
using Latchkey.Store;

namespace Latchkey.OAuth;

/// <summary>
/// Opens a URL that carries a secret (an authorization URL with its <c>state</c>, the dashboard's one-time sign-in
/// link) in the browser without a shell and without putting the URL in any process's arguments: it writes a
/// <see cref="RedirectPage"/> that sends the browser on, and gives the opener that page's <c>file://</c> URL. The
/// opener is the platform's (<c>xdg-open</c>, <c>open</c>, <c>rundll32 url.dll,FileProtocolHandler</c>), or the argv
/// template in <c>LATCHKEY_BROWSER</c> (<c>{url}</c> is replaced by the page's URL, else it is appended). With
/// <c>--no-browser</c> (and no <c>LATCHKEY_BROWSER</c>) nothing is written or started: the URL is printed alone on a
/// line of standard error.
/// </summary>
/// <remarks>
/// <para><b>Security.</b> A process's arguments are readable by every user of the machine (<c>/proc/PID/cmdline</c>);
/// its output goes to the owner's terminal. So the URL itself reaches standard error only, and the page (0600 in a
/// 0700 folder, <see cref="RedirectPage"/>) is deleted when the caller disposes it: when the sign-in ends, or when
/// the dashboard's link is used or expires.</para>
/// </remarks>
internal sealed class BrowserLauncher(TextWriter error, bool noBrowser, TimeProvider time, string? pageFolder = null, Func<string, string?>? getEnvironment = null)
{
    /// <summary>The folder of a home where the redirect pages are written while a browser is being sent on.</summary>
    public static string PageFolder(StoreHome home)
    {
        ArgumentNullException.ThrowIfNull(home);
        return Path.Combine(home.Path, "browser-pages");
    }

    /// <summary>Where the person is told what happens meanwhile (standard error), e.g. that a stray request to the
    /// sign-in listener was ignored.</summary>
    public TextWriter Notices => error;

    /// <summary>Opens <paramref name="url"/> through a redirect page, or prints it; the caller has already checked it
    /// is http(s).</summary>
    /// <param name="url">The URL to send the browser to.</param>
    /// <param name="lifetime">How long the URL is of use; the page is deleted by the next launch after that should
    /// the caller not have disposed it.</param>
    /// <returns>The page handed to the browser, which the caller disposes (deleting it) once the URL is used or
    /// expired; null when the URL was only printed or the opener could not be started.</returns>
    public RedirectPage? Open(Uri url, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (url.Scheme != Uri.UriSchemeHttps && url.Scheme != Uri.UriSchemeHttp)
        {
            throw new OAuthException("authorization_url_refused", $"Refusing to open an authorization URL with the scheme '{url.Scheme}'.");
        }

        var template = (getEnvironment ?? Environment.GetEnvironmentVariable)("LATCHKEY_BROWSER");
        if (noBrowser && string.IsNullOrWhiteSpace(template))
        {
            error.WriteLine("Open this URL in a browser to sign in:");
            error.WriteLine(url.AbsoluteUri);
            error.Flush();
            return null;
        }

        var page = RedirectPage.Write(url, pageFolder, lifetime, time);
        var argv = string.IsNullOrWhiteSpace(template) ? DefaultOpener() : template.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        var hasPlaceholder = argv.Any(a => a.Contains("{url}", StringComparison.Ordinal));
        var info = new ProcessStartInfo(argv[0]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in argv.Skip(1))
        {
            info.ArgumentList.Add(a.Replace("{url}", page.FileUrl.AbsoluteUri, StringComparison.Ordinal));
        }

        if (!hasPlaceholder)
        {
            info.ArgumentList.Add(page.FileUrl.AbsoluteUri);
        }

        error.WriteLine("Opening your browser to sign in. If it does not open, or cannot read the page it is given (a browser installed as a snap cannot read hidden folders), visit:");
        error.WriteLine(url.AbsoluteUri);
        error.Flush();
        try
        {
            using var process = Process.Start(info);
            return page;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            page.Dispose();
            error.WriteLine($"(Could not start '{argv[0]}': {ex.Message}. Open the URL above by hand.)");
            return null;
        }
    }

    private static List<string> DefaultOpener() =>
        OperatingSystem.IsMacOS() ? ["open"] : OperatingSystem.IsWindows() ? ["rundll32", "url.dll,FileProtocolHandler"] : ["xdg-open"];
}
