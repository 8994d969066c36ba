using Microsoft.Playwright;

namespace Latchkey.Tests.Dashboard;

/// <summary>
/// Playwright driving Debian's Chromium (<c>/usr/bin/chromium</c>, installed by test.sh), headless, shared by the
/// dashboard tests. Playwright never downloads a browser here: the .NET package's driver runs on the node it
/// bundles, and only the system Chromium is launched.
/// </summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where the screenshots go: tests/artifacts/dashboard (gitignored), kept after the run.</summary>
    public static string ArtifactsFolder { get; } = Directory.CreateDirectory(Path.Combine(Processes.RepoRoot, "tests", "artifacts", "dashboard")).FullName;

    public async Task InitializeAsync()
    {
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} is missing: install Debian's chromium package (./test.sh does).");
        }

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = ChromiumPath, Headless = true });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }
}
