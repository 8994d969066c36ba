using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Peers;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Every user of the machine can read every process's arguments (<c>/proc/PID/cmdline</c>). Latchkey opens two URLs
/// that carry a secret in the browser: the dashboard's one-time sign-in link (<c>/ui/#token=…</c>), and a sign-in's
/// authorization URL (its <c>state</c>, with the loopback <c>redirect_uri</c>). Were either an argument of the
/// opener or the browser, another user polling <c>/proc</c> could sign in to the dashboard first (and from there
/// make a client key for every credential), or answer the sign-in's listener first with <c>access_denied</c>.
/// Here another user (<see cref="ArgvWatcher"/>, as <c>nobody</c>) reads every process's arguments every 5 ms
/// during a real <c>latchkey dashboard</c> and a real <c>latchkey login</c> against the real authorization server,
/// with a browser that takes 2 s to start, and acts on whatever it reads at once.
/// </summary>
public sealed class ProcessArgumentsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan SlowStart = TimeSpan.FromSeconds(2);

    [AsAnotherUserFact]
    public async Task Dashboard_AnotherUserReadingEveryProcesssArguments_NeverSeesTheTokenAndCannotSignInFirst()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        var browser = StandInBrowser.Write(gateway.Home.Root, SlowStart, chromium: true);
        await using var watcher = ArgvWatcher.Start(gateway.Url, issuer: null);

        var result = await Processes.Latchkey(gateway.HomePath, null, new Dictionary<string, string> { ["LATCHKEY_BROWSER"] = browser.Template }, "dashboard");
        var link = await browser.FollowedAsync();
        var finalPage = await browser.FinalPageAsync();
        var report = await watcher.StopAsync();

        var token = link.Fragment.StartsWith("#token=", StringComparison.Ordinal) ? link.Fragment["#token=".Length..] : string.Empty;
        Assert.True(token.Length >= 40, "the browser was not sent to a sign-in link");
        Assert.True(report.Strings.Any(s => s == browser.Script), "the watcher never saw the browser's arguments, so it proves nothing: " + report.Summary(_ => false));
        // Other programs on this machine (other tests) may have links of their own in their arguments: only this
        // gateway's link counts.
        bool Leaks(string s) => s.Contains(token, StringComparison.Ordinal) || s.Contains(gateway.Url + "/ui/#", StringComparison.Ordinal);
        Assert.True(!report.Strings.Any(Leaks), "another user read the dashboard's sign-in token in a process's arguments: " + report.Summary(Leaks));
        Assert.True(!report.Redemptions.Any(r => r.Session),
            $"another user signed in to the dashboard with what it read ({report.Redemptions.Count(r => r.Session)} sessions): " + report.Summary(Leaks));
        if (report.Strings.Any(s => s.Contains("/browser-pages/", StringComparison.Ordinal)))
        {
            Assert.True(report.FilesRefused > 0, "the watcher saw the redirect page's path but never tried to read it: " + report.Summary(_ => false));
        }

        // The person's browser, 2 s late, still signs in; the command saw the link used and deleted the page.
        Assert.True(result.ExitCode == 0, Redacted(result.ToString()));
        Assert.Contains("The browser used the sign-in link.", result.Stderr, StringComparison.Ordinal);
        Assert.True(finalPage.Contains("Signed in.", StringComparison.Ordinal), "the person's browser did not end up signed in: " + Redacted(Excerpt(finalPage)));
        Assert.Empty(PagesLeft(gateway.HomePath));

        // Control: the same watcher does sign in when a sign-in link is in a process's arguments, so the test can fail.
        await using var control = ArgvWatcher.Start(gateway.Url, issuer: null);
        var printed = await gateway.Cli(null, "dashboard", "--no-browser");
        var fresh = System.Text.RegularExpressions.Regex.Match(printed.Stderr, @"http://127\.0\.0\.1:\d+/ui/#token=[A-Za-z0-9_-]+").Value;
        Assert.NotEmpty(fresh);
        await RunWithArgumentAsync(fresh);
        var controlReport = await control.StopAsync();
        Assert.True(controlReport.Redemptions.Any(r => r.Session), "the watcher cannot sign in even with a link in plain sight: " + controlReport.Summary(_ => false));
    }

    [AsAnotherUserFact]
    public async Task Login_AnotherUserReadingEveryProcesssArguments_NeverSeesTheStateOrCodeAndCannotEndTheSignIn()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        var browser = StandInBrowser.Write(lk.TempHome.Root, SlowStart, chromium: false);
        await using var watcher = ArgvWatcher.Start(gateway: null, lk.Peer.Issuer);

        var info = lk.StartInfo("login", "mcp", "--resource", lk.Peer.Resource);
        info.Environment["LATCHKEY_BROWSER"] = browser.Template;
        var result = await Processes.Run(info, null);
        var authorize = await browser.FollowedAsync();
        var report = await watcher.StopAsync();

        var query = System.Web.HttpUtility.ParseQueryString(authorize.Query);
        var state = query["state"] ?? string.Empty;
        var callback = query["redirect_uri"] ?? string.Empty;
        Assert.True(state.Length >= 20 && callback.Length > 0, "the browser was not sent to an authorization URL");
        Assert.True(report.Strings.Any(s => s == browser.Script), "the watcher never saw the browser's arguments, so it proves nothing: " + report.Summary(_ => false));

        // Other programs on this machine (other tests) may have sign-ins of their own in their arguments: only this
        // sign-in's authorization URL, state, and callback (which would carry the code) count.
        bool Leaks(string s) => s.Contains(state, StringComparison.Ordinal) || s.Contains(authorize.GetLeftPart(UriPartial.Path) + "?", StringComparison.Ordinal)
            || s.Contains(callback + "?", StringComparison.Ordinal) || s.Contains(Uri.EscapeDataString(callback), StringComparison.Ordinal);
        Assert.True(!report.Strings.Any(Leaks), "another user read the sign-in's state or code in a process's arguments: " + report.Summary(Leaks));
        Assert.True(report.Forgeries.Count == 0, $"another user answered the sign-in's listener first ({report.Forgeries.Count} forged callbacks): " + report.Summary(Leaks));

        Assert.True(result.ExitCode == 0, $"the sign-in did not succeed: {Redacted(result.ToString())}\nbrowser: {lk.ReadBrowserLog()}");
        var stored = await lk.ReadAsync("mcp");
        Assert.NotNull(stored);
        Assert.Equal("ok", Latchkey.Store.RowCodec.StateText(stored.State));
        Assert.Empty(PagesLeft(lk.Home));

        // Control: the same watcher does answer a listener first when an authorization URL is in a process's
        // arguments, so the test can fail.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var back = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/callback";
        await using var control = ArgvWatcher.Start(gateway: null, lk.Peer.Issuer);
        var accepted = listener.AcceptTcpClientAsync();
        await RunWithArgumentAsync($"{authorize.GetLeftPart(UriPartial.Path)}?state=control-state-0123456789abcdef&redirect_uri={Uri.EscapeDataString(back)}");
        using var forged = await accepted.WaitAsync(TimeSpan.FromSeconds(30));
        var line = await new StreamReader(forged.GetStream(), Encoding.ASCII).ReadLineAsync();
        Assert.StartsWith("GET /callback?state=control-state-0123456789abcdef&error=access_denied", line, StringComparison.Ordinal);
        forged.Close();
        await control.StopAsync();
    }

    /// <summary>Runs a process of the owner's with <paramref name="argument"/> among its arguments for a second.</summary>
    private static async Task RunWithArgumentAsync(string argument)
    {
        using var process = Process.Start(new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", "sleep 1", "sh", argument }, UseShellExecute = false })!;
        await process.WaitForExitAsync();
        await RealTime.ForAsync(TimeSpan.FromMilliseconds(500)); // the watcher (another process) has its chance to attack
    }

    private static string[] PagesLeft(string home)
    {
        var folder = Path.Combine(home, "browser-pages");
        return Directory.Exists(folder) ? Directory.GetFiles(folder) : [];
    }

    private static string Excerpt(string html) => html.Length <= 400 ? html : html[..400] + "…";

    private static string Redacted(string text) => System.Text.RegularExpressions.Regex.Replace(text, @"(token=|state=|code=)[A-Za-z0-9_\-]+", "$1***");
}
