using System.Diagnostics;
using System.Text.RegularExpressions;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.Tests.Peers;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Latchkey.Tests.Dashboard;

/// <summary>
/// One dashboard test's world: a private home, a real <c>latchkey serve</c> on it, optionally the real
/// oidc-provider, and a fresh Chromium context. Secrets the test knows are collected so that every page shown can
/// be scanned for them.
/// </summary>
internal sealed partial class DashboardWorld : IAsyncDisposable
{
    private readonly TempHome _home;
    private readonly ITestOutputHelper _output;

    private DashboardWorld(TempHome home, GatewayProcess gateway, OidcProviderPeer? peer, IBrowserContext context, ITestOutputHelper output)
    {
        _home = home;
        Gateway = gateway;
        Peer = peer;
        Context = context;
        _output = output;
    }

    public GatewayProcess Gateway { get; }

    public OidcProviderPeer? Peer { get; }

    public IBrowserContext Context { get; }

    /// <summary>Every secret value the test has seen; no page may contain one.</summary>
    public List<string> Secrets { get; } = [];

    public static async Task<DashboardWorld> StartAsync(ChromiumFixture chromium, ITestOutputHelper output, bool withPeer = false, Action<TempHome>? beforeGateway = null)
    {
        var home = new TempHome();
        OidcProviderPeer? peer = withPeer ? await OidcProviderPeer.StartAsync(output) : null;
        beforeGateway?.Invoke(home);
        var gateway = await GatewayProcess.StartAsync(home);
        var context = await chromium.Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1100, Height = 900 } });
        context.SetDefaultTimeout(20_000);
        return new DashboardWorld(home, gateway, peer, context, output);
    }

    /// <summary>Runs <c>latchkey dashboard --no-browser</c> and returns the one-time link it printed.</summary>
    public async Task<string> DashboardLinkAsync()
    {
        var result = await Gateway.Cli(null, "dashboard", "--no-browser");
        Assert.True(result.ExitCode == 0, result.ToString());
        var link = LinkLine().Match(result.Stderr);
        Assert.True(link.Success, result.ToString());
        Assert.StartsWith(Gateway.Url + "/ui/#token=", link.Value, StringComparison.Ordinal);
        return link.Value;
    }

    /// <summary>Signs a new page in with a fresh one-time link and returns it on the credentials page.</summary>
    public async Task<IPage> SignInAsync()
    {
        var page = await Context.NewPageAsync();
        await OpenLinkAsync(page, await DashboardLinkAsync());
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Credentials");
        return page;
    }

    /// <summary>Opens a one-time link and waits for the dashboard it leads to (or says where the page got stuck).</summary>
    public async Task OpenLinkAsync(IPage page, string link)
    {
        var console = new List<string>();
        page.Console += (_, m) => console.Add(m.Text);
        await page.GotoAsync(link);
        try
        {
            // The session's own pages (/ui/s/TAG/; SessionBase checks that form); the bare /ui/ is accepted too, so
            // that the attack tests in Security/ can show what an older gateway did.
            await page.WaitForURLAsync(new Regex("^" + Regex.Escape(Gateway.Url) + "/ui/(s/[A-Za-z0-9_-]{22}/)?$"), new() { Timeout = 10_000 });
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"sign-in stuck at {page.Url}; console: {string.Join(" | ", console)}; page: {await page.ContentAsync()}\ngateway: {Gateway.Log}");
        }
    }

    /// <summary>The signed-in session's own path on the page's URL, <c>http://127.0.0.1:PORT/ui/s/TAG/</c>: every page
    /// of the session is under it.</summary>
    public static string SessionBase(IPage page)
    {
        var m = SessionPath().Match(page.Url);
        Assert.True(m.Success, $"{page.Url} is not a signed-in dashboard page");
        return m.Value;
    }

    /// <summary>Signs in to the peer with the CLI, the headless test browser standing in for the person.</summary>
    public async Task LoginAsync(string name, params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, Gateway.HomePath, ["login", name, .. args]);
        info.Environment["LATCHKEY_BROWSER"] = $"{Processes.TestBrowserExe} {{url}}";
        info.Environment["LATCHKEY_TEST_BROWSER_LOG"] = Path.Combine(_home.Root, "browser.log");
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(process.ExitCode == 0, $"login failed: {await stdout}\n{await stderr}");
    }

    public async Task<CredentialRecord?> ReadAsync(string name)
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(Gateway.HomePath), TimeProvider.System);
        return await store.GetAsync(name, default);
    }

    /// <summary>Adds the record's tokens to <see cref="Secrets"/>.</summary>
    public async Task CollectSecretsAsync(string name)
    {
        var r = await ReadAsync(name);
        foreach (var s in new[] { r?.Secrets.AccessToken, r?.Secrets.RefreshToken, r?.Secrets.IdToken, r?.Secrets.ClientSecret, r?.Secrets.ApiKey })
        {
            if (!string.IsNullOrEmpty(s))
            {
                Secrets.Add(s);
            }
        }
    }

    /// <summary>Fails when the page's HTML holds any secret in <see cref="Secrets"/> (or a part of one).</summary>
    public async Task AssertNoSecretAsync(IPage page)
    {
        var html = await page.ContentAsync();
        foreach (var secret in Secrets)
        {
            Assert.True(!html.Contains(secret, StringComparison.Ordinal) && !html.Contains(secret[..Math.Min(16, secret.Length)], StringComparison.Ordinal),
                $"the page {page.Url} shows a secret");
        }
    }

    public async Task ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(ChromiumFixture.ArtifactsFolder, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        _output.WriteLine($"screenshot: {path}");
    }

    public async ValueTask DisposeAsync()
    {
        await Context.DisposeAsync();
        await Gateway.DisposeAsync();
        if (Peer is not null)
        {
            await Peer.DisposeAsync();
        }

        _home.Dispose();
    }

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+/ui/#token=[A-Za-z0-9_-]+")]
    private static partial Regex LinkLine();

    [GeneratedRegex(@"^http://127\.0\.0\.1:\d+/ui/s/[A-Za-z0-9_-]{22}/")]
    private static partial Regex SessionPath();
}
