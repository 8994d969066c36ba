using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Latchkey.Tests.Dashboard;

/// <summary>
/// The dashboard (<c>/ui</c>) in a real headless Chromium against a real <c>latchkey serve</c> and, for reconnect,
/// the real oidc-provider: sign-in with the one-time link, a broken credential's reason shown live, reconnect
/// through the browser, client keys shown once and revoked, forms without the anti-forgery token refused, and no
/// secret in any page. Screenshots of the main pages go to tests/artifacts/dashboard.
/// </summary>
public sealed class DashboardBrowserTests(ChromiumFixture chromium, ITestOutputHelper output) : IClassFixture<ChromiumFixture>
{
    private const string ApiKeySecret = "sk-ant-DASHBOARD-CANARY-5f1c9e0a7b";

    [Fact]
    public async Task SignIn_OneTimeLink_SetsStrictHttpOnlyCookieAndSecondUseIsRefused()
    {
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        await world.Gateway.AddApiKeyAsync("anthropic", "http://127.0.0.1:9", ApiKeySecret);
        world.Secrets.Add(ApiKeySecret);
        var link = await world.DashboardLinkAsync();

        var page = await world.Context.NewPageAsync();
        await world.OpenLinkAsync(page, link);
        await Assertions.Expect(page.Locator("#cred-anthropic .badge")).ToHaveTextAsync("working");
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Signed in");
        Assert.DoesNotContain("token=", page.Url, StringComparison.Ordinal);
        var sessionPath = new Uri(DashboardWorld.SessionBase(page)).AbsolutePath.TrimEnd('/');
        var cookie = Assert.Single(await world.Context.CookiesAsync());
        Assert.Equal(("latchkey_ui", sessionPath, true, SameSiteAttribute.Strict), (cookie.Name, cookie.Path, cookie.HttpOnly, cookie.SameSite));
        await world.AssertNoSecretAsync(page);
        await AssertLabelledAndNarrowAsync(page);

        // The same link in another browser: refused, and that browser is not signed in.
        await using var other = await chromium.Browser.NewContextAsync();
        var second = await other.NewPageAsync();
        await second.GotoAsync(link);
        await Assertions.Expect(second.Locator("#signin-status")).ToContainTextAsync("already used or has expired");
        Assert.Empty(await other.CookiesAsync());
        var direct = await second.GotoAsync(world.Gateway.Url + sessionPath + "/keys");
        Assert.Equal(401, direct!.Status);
        Assert.Contains("sign-in", world.Gateway.Log, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(link[(link.IndexOf('=', StringComparison.Ordinal) + 1)..], world.Gateway.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keys_CreateShownOnceThenRevoke_GatewayRefusesTheRevokedKey()
    {
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        await world.Gateway.AddApiKeyAsync("anthropic", "http://127.0.0.1:9", ApiKeySecret);
        world.Secrets.Add(ApiKeySecret);
        var page = await world.SignInAsync();

        await page.GetByRole(AriaRole.Link, new() { Name = "Client keys" }).ClickAsync();
        await page.GetByLabel("Name (who or what holds it)").FillAsync("laptop-agent");
        await page.GetByLabel("Credentials it may use").FillAsync("anthropic");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        var shown = page.GetByLabel("Client key", new() { Exact = true });
        await Assertions.Expect(shown).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("^lk_"));
        var key = await shown.InputValueAsync();
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Created client key 'laptop-agent' for anthropic");
        await world.ScreenshotAsync(page, "keys-created");
        var before = await AgentRequestAsync(world, key);

        await page.ReloadAsync();
        Assert.DoesNotContain(key, await page.ContentAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(key[..12], await page.ContentAsync(), StringComparison.Ordinal);
        await Assertions.Expect(page.Locator("#key-laptop-agent .badge")).ToHaveTextAsync("active");
        world.Secrets.Add(key);
        await world.AssertNoSecretAsync(page);

        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke key laptop-agent" }).ClickAsync();
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Revoked client key 'laptop-agent'");
        await Assertions.Expect(page.Locator("#key-laptop-agent .badge")).ToHaveTextAsync("revoked");
        await world.ScreenshotAsync(page, "keys");

        Assert.NotEqual(HttpStatusCode.Unauthorized, before);
        // The gateway process caches a key check for one second of its clock.
        var after = await RealTime.UntilAsync(() => AgentRequestAsync(world, key), s => s == HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(4));

        Assert.Equal(HttpStatusCode.Unauthorized, after);
        Assert.DoesNotContain(key, world.Gateway.Log, StringComparison.Ordinal);

        // The audit page shows the store's audit log: the key's requests by its name, the refusals, never the key.
        await page.GetByRole(AriaRole.Link, new() { Name = "Audit log" }).ClickAsync();
        var served = page.Locator("tbody tr", new() { HasText = "laptop-agent" });
        var refused = page.Locator("tbody tr", new() { HasText = "401" });
        await RealTime.UntilAsync( // the gateway process writes audit entries in the background, in batches
            async () =>
            {
                if (await served.CountAsync() > 0 && await refused.CountAsync() > 0)
                {
                    return true;
                }

                await page.ReloadAsync();
                return false;
            },
            TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));

        await Assertions.Expect(served.First).ToContainTextAsync("/c/anthropic");
        await Assertions.Expect(refused.First).ToContainTextAsync("/c/anthropic");
        await world.ScreenshotAsync(page, "audit");
        await world.AssertNoSecretAsync(page);
    }

    [Fact]
    public async Task Credentials_UpstreamRefusedTheKey_LastFailureShownWithItsRequestIdAndWhatToDo()
    {
        await using var upstream = new Latchkey.UpstreamSim.SimulatedUpstream();
        await upstream.StartAsync();
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        await world.Gateway.AddApiKeyAsync("anthropic", upstream.Url, ApiKeySecret, "--header", "x-api-key", "--format", "{secret}");
        world.Secrets.Add(ApiKeySecret);
        var key = await world.Gateway.CreateKeyAsync("agent", "anthropic");
        world.Secrets.Add(key);
        var page = await world.SignInAsync();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/anthropic/v1/messages")
        {
            Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-api-key", key);
        request.Headers.Add("sim-scenario", "auth_error");
        using var response = await world.Gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var requestId = response.Headers.GetValues("request-id").Single();

        // The page updates by itself (server-sent events) when the gateway records the failure.
        var failure = page.Locator("#cred-anthropic .upstream-failure");
        await Assertions.Expect(failure).ToContainTextAsync("HTTP 401");
        await Assertions.Expect(failure.Locator(".request-id")).ToHaveTextAsync(requestId);
        await Assertions.Expect(failure).ToContainTextAsync("What to do");
        await world.ScreenshotAsync(page, "credentials-upstream-failure");
        await world.AssertNoSecretAsync(page);
    }

    [Fact]
    public async Task Forms_WithoutOrWithWrongAntiforgeryToken_RefusedAndNothingChanges()
    {
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        var page = await world.SignInAsync();
        var keysPage = DashboardWorld.SessionBase(page) + "keys";
        await page.GotoAsync(keysPage);
        var token = await page.Locator($"form[action='{new Uri(keysPage).AbsolutePath}'] input[name=_csrf]").InputValueAsync();
        var api = world.Context.APIRequest; // carries the session cookie, like the browser

        var without = await api.PostAsync(keysPage, new() { Form = Form(api, ("name", "forged"), ("credentials", "*")), MaxRedirects = 0 });
        var wrong = await api.PostAsync(keysPage, new() { Form = Form(api, ("name", "forged2"), ("credentials", "*"), ("_csrf", token[..^2] + "xx")), MaxRedirects = 0 });
        var crossSite = await api.PostAsync(keysPage, new() { Form = Form(api, ("name", "forged3"), ("credentials", "*"), ("_csrf", token)), Headers = new Dictionary<string, string> { ["Origin"] = "http://evil.example" }, MaxRedirects = 0 });
        var proper = await api.PostAsync(keysPage, new() { Form = Form(api, ("name", "proper"), ("credentials", "*"), ("_csrf", token)), MaxRedirects = 0 });

        Assert.Equal((403, 403, 403, 302), (without.Status, wrong.Status, crossSite.Status, proper.Status));
        Assert.Contains("anti-forgery", await without.TextAsync(), StringComparison.Ordinal);
        var keys = await world.Gateway.Cli(null, "keys", "list", "--json");
        using var json = JsonDocument.Parse(keys.Stdout);
        Assert.Equal(["proper"], json.RootElement.EnumerateArray().Select(k => k.GetProperty("name").GetString()!).ToArray());

        // A page asked for under another host name (DNS rebinding) is refused, even with the cookie.
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false });
        using var rebound = new HttpRequestMessage(HttpMethod.Get, DashboardWorld.SessionBase(page));
        rebound.Headers.Host = "attacker.example";
        rebound.Headers.Add("Cookie", string.Join("; ", (await world.Context.CookiesAsync()).Select(c => $"{c.Name}={c.Value}")));
        Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(rebound)).StatusCode);
    }

    [Fact]
    public async Task Restore_EarlierVersion_BecomesCurrentAsANewVersionAndTheOutcomeIsSaid()
    {
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        await world.Gateway.AddApiKeyAsync("anthropic", "http://127.0.0.1:9", ApiKeySecret);
        await world.Gateway.AddApiKeyAsync("anthropic", "http://127.0.0.1:10", ApiKeySecret + "-rotated", "--replace");
        world.Secrets.AddRange([ApiKeySecret, ApiKeySecret + "-rotated"]);
        var page = await world.SignInAsync();

        await page.GetByText("Version history (1 earlier version)").ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Restore version 1 of anthropic" }).ClickAsync();

        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Restored version 1 of 'anthropic'; it is now version 3.");
        var restored = (await world.ReadAsync("anthropic"))!;
        Assert.Equal((3L, "http://127.0.0.1:9", ApiKeySecret), (restored.Version, restored.Metadata.Upstream, restored.Secrets.ApiKey));
        await Assertions.Expect(page.Locator("#cred-anthropic")).ToContainTextAsync("http://127.0.0.1:9");
        await world.AssertNoSecretAsync(page);
    }

    [Fact]
    public async Task Reconnect_BrokenOAuthCredential_ReasonShownLiveThenBrowserSignsInAndGrantIsReplaced()
    {
        await using var world = await DashboardWorld.StartAsync(chromium, output, withPeer: true);
        var peer = world.Peer!;
        await world.Gateway.AddApiKeyAsync("anthropic", "http://127.0.0.1:9", ApiKeySecret);
        world.Secrets.Add(ApiKeySecret);
        await peer.SetFaultsAsync(new { atTtl = 2 });
        await world.LoginAsync("mcp", "--resource", peer.Resource);
        await peer.SetFaultsAsync(new { atTtl = 300 });
        var first = (await world.ReadAsync("mcp"))!;
        await world.CollectSecretsAsync("mcp");
        var page = await world.SignInAsync();
        await Assertions.Expect(page.Locator("#cred-mcp .badge")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^working"));
        var dashboard = DashboardWorld.SessionBase(page);
        await page.GotoAsync(dashboard);

        // Break it at the authorization server: revoke the grant (RFC 7009), then let a refresh find out.
        using (var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }))
        {
            using var revoke = await http.PostAsync(new Uri(first.Metadata.RevocationEndpoint!), new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["token"] = first.Secrets.RefreshToken!, ["token_type_hint"] = "refresh_token", ["client_id"] = first.Metadata.Client!.ClientId,
            }));
            Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        }

        await RealTime.PastAsync(first.Metadata.ExpiresAt!.Value, TimeSpan.FromMilliseconds(200)); // a real server's token, on the real clock

        var refused = await world.Gateway.Cli(null, "token", "mcp");
        Assert.NotEqual(0, refused.ExitCode);

        // The open page updates by itself (server-sent events) and says why, in words.
        await Assertions.Expect(page.Locator("#cred-mcp .badge")).ToHaveTextAsync("needs sign-in", new() { Timeout = 15_000 });
        var reason = await page.Locator("#cred-mcp .reason").InnerTextAsync();
        Assert.Contains("Why:", reason, StringComparison.Ordinal);
        Assert.Contains("Reconnect", reason, StringComparison.Ordinal);
        output.WriteLine("reason shown: " + reason);
        await world.AssertNoSecretAsync(page);
        await world.ScreenshotAsync(page, "credentials-broken");
        await page.GotoAsync(dashboard + "mcp");
        await Assertions.Expect(page.Locator("td .badge")).ToHaveTextAsync("needs sign-in");
        await world.ScreenshotAsync(page, "mcp");
        await page.GotoAsync(dashboard);

        // Reconnect: the browser goes to oidc-provider, signs in and consents, and comes back to /ui/callback.
        var beforeRequests = (await peer.CountersAsync()).TokenRequests;
        await page.GetByRole(AriaRole.Button, new() { Name = "Reconnect mcp" }).ClickAsync();
        await Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/ui/callback\\?"), new() { Timeout = 30_000 });
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Reconnected 'mcp'");
        await world.AssertNoSecretAsync(page);

        // The callback page sends the browser on to the session's dashboard, where its cookie applies again.
        await page.WaitForURLAsync(dashboard, new() { Timeout = 10_000 });
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Reconnected 'mcp'");
        await Assertions.Expect(page.Locator("#cred-mcp .badge")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex("^working"));

        var second = (await world.ReadAsync("mcp"))!;
        Assert.Equal("ok", Latchkey.Store.RowCodec.StateText(second.State));
        Assert.NotEqual(first.RefreshTokenFingerprint, second.RefreshTokenFingerprint);
        Assert.Contains("mcp:tools", second.Metadata.ScopesGranted);
        Assert.True((await peer.CountersAsync()).TokenRequests > beforeRequests);
        var token = await world.Gateway.Cli(null, "token", "mcp");
        Assert.True(token.ExitCode == 0, token.Stderr);
        var introspected = await peer.IntrospectAsync(token.Stdout.Trim());
        Assert.True(introspected.GetProperty("active").GetBoolean());
        world.Secrets.Add(token.Stdout.Trim());
        await world.CollectSecretsAsync("mcp");
        await world.AssertNoSecretAsync(page);
        await world.ScreenshotAsync(page, "credentials");
        await page.SetViewportSizeAsync(390, 844);
        await world.ScreenshotAsync(page, "credentials-narrow");
        await AssertLabelledAndNarrowAsync(page);
        foreach (var secret in world.Secrets)
        {
            Assert.DoesNotContain(secret, world.Gateway.Log, StringComparison.Ordinal);
        }

        // Restoring the version from before the reconnect would replay a rotated refresh token: refused, in words.
        await page.SetViewportSizeAsync(1100, 900);
        await page.Locator("#cred-mcp summary", new() { HasTextString = "Version history" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = $"Restore version {first.Version} of mcp" }).ClickAsync();
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("has since been rotated");
        Assert.Equal(second.Version, (await world.ReadAsync("mcp"))!.Version);

        // Remove: the grant is revoked at the authorization server (RFC 7009), then the record is gone.
        var current = (await world.ReadAsync("mcp"))!;
        await page.GetByText("Remove…").Last.ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Remove mcp for good" }).ClickAsync();
        await Assertions.Expect(page.Locator("#outcome")).ToContainTextAsync("Removed 'mcp' and its saved versions; its grant was revoked.");
        Assert.Null(await world.ReadAsync("mcp"));
        Assert.False((await peer.IntrospectAsync(current.Secrets.RefreshToken!)).GetProperty("active").GetBoolean());
        await Assertions.Expect(page.Locator("#cred-mcp")).ToHaveCountAsync(0);
    }

    /// <summary>Every visible form control has a label, and a phone-width window needs no sideways scrolling.</summary>
    private static async Task AssertLabelledAndNarrowAsync(IPage page)
    {
        var unlabelled = await page.EvaluateAsync<int>("() => [...document.querySelectorAll('input:not([type=hidden])')].filter(i => i.labels.length === 0).length");
        Assert.Equal(0, unlabelled);
        var size = page.ViewportSize;
        await page.SetViewportSizeAsync(360, 800);
        var overflow = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth - window.innerWidth");
        Assert.True(overflow <= 0, $"the page is {overflow}px wider than a 360px window");
        if (size is not null)
        {
            await page.SetViewportSizeAsync(size.Width, size.Height);
        }
    }

    private static async Task<HttpStatusCode> AgentRequestAsync(DashboardWorld world, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/c/anthropic/v1/models");
        request.Headers.Add("x-api-key", key);
        using var response = await world.Gateway.Http.SendAsync(request);
        return response.StatusCode;
    }

    private static IFormData Form(IAPIRequestContext api, params (string Name, string Value)[] fields)
    {
        var form = api.CreateFormData();
        foreach (var (name, value) in fields)
        {
            form.Set(name, value);
        }

        return form;
    }
}
