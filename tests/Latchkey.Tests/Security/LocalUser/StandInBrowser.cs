using System.Diagnostics;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// The person's browser as <c>LATCHKEY_BROWSER</c> starts it (<see cref="Template"/>): a script that notes where the
/// page it is given sends a browser (<see cref="FollowedAsync"/>, for the test's eyes only: the file is in the test's
/// private folder), waits <c>delay</c> (a browser slow to start, the window another user has), then opens it in a
/// real browser: headless Chromium (<c>/usr/bin/chromium</c>, its own profile), which follows the page's redirect
/// and runs the dashboard's sign-in script, saving the page it ends on; or the headless test browser, which walks an
/// authorization server's pages back to the sign-in's loopback listener.
/// </summary>
internal sealed class StandInBrowser
{
    private const string Chromium = "/usr/bin/chromium";
    private readonly string _folder;

    private StandInBrowser(string folder, string script)
    {
        _folder = folder;
        Script = script;
    }

    /// <summary>The script's path: its own arguments show up in <c>/proc</c> while it waits.</summary>
    public string Script { get; }

    /// <summary>The <c>LATCHKEY_BROWSER</c> value that starts it.</summary>
    public string Template => Script + " {url}";

    /// <summary>Writes the script into <paramref name="folder"/> (a private folder of the test).</summary>
    public static StandInBrowser Write(string folder, TimeSpan delay, bool chromium)
    {
        Assert.True(!chromium || File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium package (./test.sh does).");
        var dir = Directory.CreateDirectory(Path.Combine(folder, "stand-in-browser")).FullName;
        var script = Path.Combine(dir, "browser.sh");
        var open = chromium
            ? $"'{Chromium}' --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir='{dir}/profile' --timeout=8000 --dump-dom \"$1\" > '{dir}/page.tmp' 2>/dev/null; mv '{dir}/page.tmp' '{dir}/page.html'"
            : $"exec '{Processes.TestBrowserExe}' \"$1\"";
        File.WriteAllText(script, $"""
            #!/bin/sh
            '{Processes.TestBrowserExe}' --follow "$1" > '{dir}/followed.tmp' && mv '{dir}/followed.tmp' '{dir}/followed'
            sleep {delay.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}
            {open}

            """);
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return new StandInBrowser(dir, script);
    }

    /// <summary>Whether the browser was started (it notes where it was sent first thing).</summary>
    public bool Started => File.Exists(Path.Combine(_folder, "followed")) || File.Exists(Path.Combine(_folder, "followed.tmp"));

    /// <summary>The URL the page sent the browser to (waits up to 30 s for the browser to have been started).</summary>
    public async Task<Uri> FollowedAsync()
    {
        var path = Path.Combine(_folder, "followed");
        Assert.True(await RealTime.UntilAsync(() => File.Exists(path), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50)), "the browser was never started");

        return new Uri((await File.ReadAllTextAsync(path)).Trim());
    }

    /// <summary>The HTML of the page Chromium ended on (waits up to 60 s for it to finish).</summary>
    public async Task<string> FinalPageAsync()
    {
        var path = Path.Combine(_folder, "page.html");
        Assert.True(await RealTime.UntilAsync(() => File.Exists(path), TimeSpan.FromSeconds(60)), "Chromium never finished with the page");

        return await File.ReadAllTextAsync(path);
    }
}
