using System.Net;
using System.Security.Cryptography;
using Latchkey.Tests.Dashboard;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Browsers send a cookie to every port of its host. Another local user runs a server on another port of 127.0.0.1;
/// the person, signed in to the dashboard in a real Chromium, follows a link to it, and its page leads the browser on
/// to paths under <c>/ui</c>. That server must receive neither the dashboard's session cookie nor the session's
/// path; and a session cookie replayed from another process, with forged Host, Origin, Referer and Sec-Fetch headers,
/// must open no page and perform no action (list credentials, create a client key).
/// </summary>
public sealed class DashboardCookieTests(ChromiumFixture chromium, ITestOutputHelper output) : IClassFixture<ChromiumFixture>
{
    private const string Lure = """
        <!doctype html><html><head><title>Docs</title></head><body>
        <a id="lure" href="/ui/">Open the dashboard docs</a> <a id="lure-keys" href="/ui/keys">keys</a>
        </body></html>
        """;

    [Fact]
    public async Task SessionCookie_LinkToAServerOnAnotherPortThenReplayedWithForgedHeaders_CapturesNothingAndOpensNothing()
    {
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        await world.Gateway.AddApiKeyAsync("anthropic-secret-name", "http://127.0.0.1:9", "sk-ant-" + Guid.NewGuid().ToString("N"));
        var page = await world.SignInAsync();
        var signedIn = page.Url;
        await using var other = new PortSquatter(0, "{}"u8.ToArray(), Lure);

        // The person follows a link from the dashboard to the other server; its page sends the browser on, under /ui.
        var left = page.WaitForURLAsync(other.Url + "/docs");
        await page.EvaluateAsync("u => { const a = document.createElement('a'); a.href = u; document.body.append(a); a.click(); }", other.Url + "/docs");
        await left;
        await page.ClickAsync("#lure");
        await page.WaitForURLAsync(other.Url + "/ui/");
        await page.GotoAsync(other.Url + "/ui/keys"); // and typed, as a person pasting a link would
        await page.GoBackAsync();
        await page.ClickAsync("#lure-keys");
        await page.WaitForURLAsync(other.Url + "/ui/keys");

        var captured = other.HeaderValues("Cookie").SelectMany(c => c.Split(';', StringSplitOptions.TrimEntries))
            .Where(c => c.StartsWith("latchkey_ui=", StringComparison.Ordinal)).Select(c => c["latchkey_ui=".Length..]).Distinct().ToList();
        Assert.True(captured.Count == 0, $"the browser sent the dashboard's session cookie to the server on another port ({other.RequestLines.Count} requests there)");
        var own = signedIn;
        var tag = new Uri(own).AbsolutePath;
        Assert.Matches("^/ui/s/[A-Za-z0-9_-]{22}/$", tag);
        Assert.DoesNotContain(other.Requests, r => r.Contains(tag, StringComparison.Ordinal)); // no Referer (or anything) with the session's path

        // Even with the cookie in hand (taken from the browser here, as if it had leaked some other way), a replay
        // from another process with every browser header forged opens nothing.
        var cookie = (await world.Context.CookiesAsync()).Single(c => c.Name == "latchkey_ui").Value;
        var gateway = new Uri(world.Gateway.Url);
        var guess = "/ui/s/" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false, AllowAutoRedirect = false });
        foreach (var path in new[] { "/ui/", "/ui/keys", "/UI/keys", guess + "/", guess + "/keys", guess + "/events", "/ui/s//keys" })
        {
            using var request = Forged(HttpMethod.Get, gateway, path, cookie);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.NotFound, $"GET {path} with the replayed cookie answered {(int)response.StatusCode}");
            Assert.Null(response.Headers.Location); // never sent on to the session's own path
            Assert.DoesNotContain(tag, body, StringComparison.Ordinal);
            Assert.DoesNotContain("anthropic-secret-name", body, StringComparison.Ordinal);
            Assert.DoesNotContain("_csrf", body, StringComparison.Ordinal);
        }

        foreach (var path in new[] { "/ui/keys", "/UI/keys", guess + "/keys" })
        {
            using var request = Forged(HttpMethod.Post, gateway, path, cookie);
            request.Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["name"] = "stolen", ["credentials"] = "*", ["expires"] = "" });
            using var response = await http.SendAsync(request);
            Assert.True((int)response.StatusCode >= 400, $"POST {path} with the replayed cookie answered {(int)response.StatusCode}");
        }

        var keys = await world.Gateway.Cli(null, "keys", "list", "--json");
        Assert.DoesNotContain("stolen", keys.Stdout, StringComparison.Ordinal);

        // The person's own browser, on the session's own path, is still signed in: the refusals above are the binding.
        await page.GotoAsync(own + "keys");
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Client keys");
    }

    /// <summary>A request as another process sends it: the cookie, and every header a browser would add, forged.</summary>
    private static HttpRequestMessage Forged(HttpMethod method, Uri gateway, string path, string cookie)
    {
        var request = new HttpRequestMessage(method, new Uri(gateway, path));
        request.Headers.Host = gateway.Authority;
        request.Headers.TryAddWithoutValidation("Cookie", "latchkey_ui=" + cookie);
        request.Headers.TryAddWithoutValidation("Origin", gateway.GetLeftPart(UriPartial.Authority));
        request.Headers.TryAddWithoutValidation("Referer", gateway.GetLeftPart(UriPartial.Authority) + "/ui/");
        request.Headers.TryAddWithoutValidation("Sec-Fetch-Site", "same-origin");
        request.Headers.TryAddWithoutValidation("Sec-Fetch-Mode", method == HttpMethod.Get ? "navigate" : "same-origin");
        request.Headers.TryAddWithoutValidation("Sec-Fetch-Dest", "document");
        request.Headers.TryAddWithoutValidation("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0 Safari/537.36");
        return request;
    }
}
