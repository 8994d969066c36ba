using System.Diagnostics;

namespace Latchkey.OAuth;

/// <summary>
/// Opens an authorization URL without a shell: the platform's opener with the URL as one argument, or the argv
/// template in <c>LATCHKEY_BROWSER</c> (<c>{url}</c> is replaced, else the URL is appended), or nothing with
/// <c>--no-browser</c>, where the URL is printed alone on a line of standard error.
/// </summary>
internal sealed class BrowserLauncher(TextWriter error, bool noBrowser, Func<string, string?>? getEnvironment = null)
{
    /// <summary>Where the person is told what happens meanwhile (standard error), e.g. that a stray request to the
    /// sign-in listener was ignored.</summary>
    public TextWriter Notices => error;

    /// <summary>Opens or prints <paramref name="url"/>; the caller has already checked it is http(s).</summary>
    public void Open(Uri url)
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
            return;
        }

        var argv = string.IsNullOrWhiteSpace(template) ? DefaultOpener() : template.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        var hasPlaceholder = argv.Any(a => a.Contains("{url}", StringComparison.Ordinal));
        var info = new ProcessStartInfo(argv[0]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in argv.Skip(1))
        {
            info.ArgumentList.Add(a.Replace("{url}", url.AbsoluteUri, StringComparison.Ordinal));
        }

        if (!hasPlaceholder)
        {
            info.ArgumentList.Add(url.AbsoluteUri);
        }

        error.WriteLine("Opening your browser to sign in. If it does not open, visit:");
        error.WriteLine(url.AbsoluteUri);
        error.Flush();
        try
        {
            using var process = Process.Start(info);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            error.WriteLine($"(Could not start '{argv[0]}': {ex.Message}. Open the URL above by hand.)");
        }
    }

    private static List<string> DefaultOpener() =>
        OperatingSystem.IsMacOS() ? ["open"] : OperatingSystem.IsWindows() ? ["rundll32", "url.dll,FileProtocolHandler"] : ["xdg-open"];
}
