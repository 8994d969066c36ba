using Latchkey.Testing;

// latchkey runs: Latchkey.TestBrowser URL  (through LATCHKEY_BROWSER="…/Latchkey.TestBrowser {url}").
// URL is the file:// page Latchkey wrote, which is followed as a browser follows its meta refresh (an http(s) URL
// is taken as it is). Walks the authorization server's pages to the redirect URI named in the URL, then GETs it,
// so Latchkey's loopback listener receives the callback. Progress (never query strings) goes to
// $LATCHKEY_TEST_BROWSER_LOG.
// Latchkey.TestBrowser --follow URL prints where the page at URL sends a browser, and nothing else: test scripts
// standing in for a browser use it to learn the link they were given.
var logPath = Environment.GetEnvironmentVariable("LATCHKEY_TEST_BROWSER_LOG");
void Log(string line)
{
    if (!string.IsNullOrEmpty(logPath))
    {
        File.AppendAllText(logPath, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n");
    }
}

try
{
    if (args is ["--follow", var page])
    {
        Console.WriteLine(LocalPage.Follow(page).AbsoluteUri);
        return 0;
    }

    var start = LocalPage.Follow(args[0]);
    if (!start.AbsoluteUri.Equals(args[0], StringComparison.Ordinal))
    {
        Log($"followed the local page to {start.GetLeftPart(UriPartial.Path)}");
    }

    var redirect = System.Web.HttpUtility.ParseQueryString(start.Query)["redirect_uri"] ?? throw new InvalidOperationException("the authorization URL names no redirect_uri");
    using var browser = new CookieBrowser(Log) { StopPrefix = redirect };
    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
    var (url, _) = await browser.WalkAsync(start, timeout.Token);
    using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
    using var delivered = await http.GetAsync(url, timeout.Token);
    Log($"delivered to {url.GetLeftPart(UriPartial.Path)}: {(int)delivered.StatusCode}");
    return 0;
}
catch (Exception ex) when (ex is InvalidOperationException or HttpRequestException or OperationCanceledException or UriFormatException or IndexOutOfRangeException or IOException)
{
    Log($"failed: {ex.GetType().Name}: {ex.Message}");
    return 1;
}
