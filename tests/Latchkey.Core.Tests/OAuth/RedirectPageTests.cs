using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Testing;

namespace Latchkey.Tests.OAuth;

/// <summary>
/// The redirect page and the launcher that hands it to the browser: a URL that carries a secret is never an argument
/// of a process (every user can read <c>/proc/PID/cmdline</c>); the browser gets a private page that leads on to it.
/// </summary>
public sealed partial class RedirectPageTests : IDisposable
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly TempHome _home = new();

    public RedirectPageTests() => _home.Home.EnsureReady();

    public void Dispose() => _home.Dispose();

    [Property(MaxTest = 500, Arbitrary = [typeof(Targets)])]
    public void Html_AnyTarget_MetaRefreshScriptAndLinkAllLeadExactlyThereAndNothingElseRuns(Uri target)
    {
        var html = RedirectPage.Html(target);
        var path = Path.Combine(_home.Root, "page.html");
        File.WriteAllText(path, html);

        Assert.Equal(target.AbsoluteUri, LocalPage.Follow(new Uri(path).AbsoluteUri).AbsoluteUri); // as a browser reads the refresh
        var script = Assert.Single(ScriptRegex().Matches(html)).Groups[1].Value;
        var literal = Assert.Single(CallRegex().Matches(script)).Groups[1].Value;
        Assert.Equal(target.AbsoluteUri, JsonSerializer.Deserialize<string>('"' + literal + '"'));
        Assert.DoesNotContain('<', script);
        Assert.Equal(target.AbsoluteUri, System.Net.WebUtility.HtmlDecode(Assert.Single(LinkRegex().Matches(html)).Groups[1].Value));
        Assert.Contains("<meta name=\"referrer\" content=\"no-referrer\">", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_FolderInTheHome_Page0600InAFolder0700OnlyThereAndDeletedOnDispose()
    {
        var folder = BrowserLauncher.PageFolder(_home.Home);
        var target = new Uri("http://127.0.0.1:7400/ui/#token=" + new string('t', 43));
        string path;
        using (var page = RedirectPage.Write(target, folder, TimeSpan.FromMinutes(2), TimeProvider.System))
        {
            path = page.Path;
            Assert.Equal(folder, Path.GetDirectoryName(path));
            Assert.Equal(Private, File.GetUnixFileMode(path));
            Assert.Equal(StoreHome.FolderMode, File.GetUnixFileMode(folder));
            Assert.DoesNotContain("t".PadRight(20, 't'), page.FileUrl.AbsoluteUri, StringComparison.Ordinal);
            Assert.Equal(target.AbsoluteUri, LocalPage.Follow(page.FileUrl.AbsoluteUri).AbsoluteUri);
        }

        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFileSystemEntries(folder));
    }

    [Fact]
    public void Write_FolderOpenToOthers_MadePrivateBeforeThePageIsWritten()
    {
        var folder = BrowserLauncher.PageFolder(_home.Home);
        Directory.CreateDirectory(folder);
        File.SetUnixFileMode(folder, (UnixFileMode)0b111_111_111);

        using var page = RedirectPage.Write(new Uri("https://as.example.com/auth?state=s"), folder, TimeSpan.FromMinutes(10), TimeProvider.System);

        Assert.Equal(StoreHome.FolderMode, File.GetUnixFileMode(folder));
        Assert.Equal(Private, File.GetUnixFileMode(page.Path));
    }

    [Fact]
    public void Write_HomeFolderMissing_FreshPrivateTemporaryFolderRemovedOnDispose()
    {
        var folder = Path.Combine(_home.Root, "no-such-home", "browser-pages");
        string temporary;
        using (var page = RedirectPage.Write(new Uri("https://as.example.com/auth?state=s"), folder, TimeSpan.FromMinutes(10), TimeProvider.System))
        {
            temporary = Path.GetDirectoryName(page.Path)!;
            Assert.StartsWith(Path.GetTempPath(), temporary, StringComparison.Ordinal);
            Assert.Equal(StoreHome.FolderMode, File.GetUnixFileMode(temporary));
            Assert.Equal(Private, File.GetUnixFileMode(page.Path));
        }

        Assert.False(Directory.Exists(temporary));
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void Write_PageLeftBehindExpired_DeletedByTheNextWriteWhileALiveOneIsKept()
    {
        var folder = BrowserLauncher.PageFolder(_home.Home);
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var target = new Uri("https://as.example.com/auth?state=s");
        var leftShort = RedirectPage.Write(target, folder, TimeSpan.FromMinutes(2), time).Path; // never disposed: its process was killed
        var leftLong = RedirectPage.Write(target, folder, TimeSpan.FromMinutes(10), time).Path;
        time.Advance(TimeSpan.FromMinutes(3));

        using var next = RedirectPage.Write(target, folder, TimeSpan.FromMinutes(2), time);

        Assert.False(File.Exists(leftShort));
        Assert.True(File.Exists(leftLong));
        Assert.True(File.Exists(next.Path));
    }

    [Fact]
    public async Task Open_BrowserTemplate_ItsArgumentsCarryOnlyThePagesFileUrlNeverTheUrl()
    {
        var secret = "state-" + Guid.NewGuid().ToString("N");
        var url = new Uri($"https://as.example.com/auth?client_id=c&state={secret}&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback");
        var argsFile = Path.Combine(_home.Root, "args");
        var browser = Path.Combine(_home.Root, "browser.sh");
        File.WriteAllText(browser, $"#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > '{argsFile}.tmp' && mv '{argsFile}.tmp' '{argsFile}'\n");
        File.SetUnixFileMode(browser, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var error = new StringWriter();
        var launcher = new BrowserLauncher(error, noBrowser: false, TimeProvider.System, BrowserLauncher.PageFolder(_home.Home),
            name => name == "LATCHKEY_BROWSER" ? $"{browser} --new-window {{url}}" : null);

        using var page = launcher.Open(url, TimeSpan.FromMinutes(10));

        Assert.NotNull(page);
        Assert.True(await RealTime.UntilAsync(() => File.Exists(argsFile), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(20)), "the browser was never started");

        var argv = File.ReadAllLines(argsFile);
        Assert.Equal([browser, "--new-window", page.FileUrl.AbsoluteUri], argv);
        Assert.DoesNotContain(argv, a => a.Contains(secret, StringComparison.Ordinal) || a.Contains("as.example.com", StringComparison.Ordinal));
        Assert.Equal(url.AbsoluteUri, LocalPage.Follow(argv[2]).AbsoluteUri);
        Assert.Contains(url.AbsoluteUri, error.ToString(), StringComparison.Ordinal); // the owner's terminal still shows it
    }

    [Fact]
    public void Open_NoBrowser_PrintsTheUrlAndWritesNothing()
    {
        using var error = new StringWriter();
        var folder = BrowserLauncher.PageFolder(_home.Home);
        var launcher = new BrowserLauncher(error, noBrowser: true, TimeProvider.System, folder, _ => null);

        var page = launcher.Open(new Uri("http://127.0.0.1:7400/ui/#token=abc"), TimeSpan.FromMinutes(2));

        Assert.Null(page);
        Assert.Contains("http://127.0.0.1:7400/ui/#token=abc", error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(folder));
    }

    [GeneratedRegex("<script>(.*?)</script>", RegexOptions.Singleline)]
    private static partial Regex ScriptRegex();

    [GeneratedRegex("""^location\.replace\("(.*)"\);$""", RegexOptions.Singleline)]
    private static partial Regex CallRegex();

    [GeneratedRegex("""<a href="([^"]*)" rel="noreferrer">""")]
    private static partial Regex LinkRegex();

    /// <summary>http(s) URLs whose query and fragment hold quotes, angle brackets, ampersands, script endings,
    /// spaces and non-ASCII letters.</summary>
    public static class Targets
    {
        public static Arbitrary<Uri> Uris() =>
            Gen.Elements("'", "\"", "<", ">", "&", "&amp;", "</script>", " ", "\\", "a", "Z", "0", "=", "#", "%", "\u00e9", "\u2028", ";url=", "-", "_")
                .ArrayOf().Select(parts => string.Concat(parts))
                .Two()
                .Select(t => Uri.TryCreate($"http://127.0.0.1:7400/ui/?q={t.Item1}#token={t.Item2}", UriKind.Absolute, out var u) ? u : new Uri("https://as.example.com/auth?state=x"))
                .ToArbitrary();
    }

    /// <summary>A clock that moves only when told.</summary>
    private sealed class ManualTime(DateTimeOffset start) : TimeProvider
    {
        private long _ticks = start.UtcTicks;

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
