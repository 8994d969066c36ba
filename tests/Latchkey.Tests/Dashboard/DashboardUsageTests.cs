using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.UpstreamSim;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Latchkey.Tests.Dashboard;

/// <summary>
/// The dashboard's Usage page in a real headless Chromium against a real <c>latchkey serve</c>: after agents used two
/// keys and two models through the gateway, the page draws, on the server, one SVG chart per key and per model whose
/// bars carry the tokens the simulated upstream reported, with tables of the same totals; the dashboard's
/// Content-Security-Policy reports no violation (no inline style or script, nothing from elsewhere) and no secret
/// appears. A screenshot goes to tests/artifacts/dashboard.
/// </summary>
public sealed class DashboardUsageTests(ChromiumFixture chromium, ITestOutputHelper output) : IClassFixture<ChromiumFixture>
{
    [Fact]
    public async Task Usage_AgentsUsedTwoKeysAndTwoModels_ChartsAndTablesShowTheUpstreamsCounts()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var world = await DashboardWorld.StartAsync(chromium, output);
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
        world.Secrets.Add(secret);
        await world.Gateway.AddApiKeyAsync("anthropic", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var alice = await world.Gateway.CreateKeyAsync("alice-agent", "anthropic");
        var bob = await world.Gateway.CreateKeyAsync("bob-agent", "anthropic");
        world.Secrets.AddRange([alice, bob]);

        var sent = new List<(string Key, string Model, SimUsage Usage)>();
        foreach (var (name, key, model, stream) in new[] { ("alice-agent", alice, "claude-opus-x", true), ("alice-agent", alice, "claude-haiku-x", false), ("bob-agent", bob, "claude-opus-x", false) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/anthropic/v1/messages")
            {
                Content = new StringContent($$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"max_tokens":8,"messages":[{"role":"user","content":"hi {{name}}"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", key);
            using var response = await world.Gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
            var id = response.Headers.GetValues("request-id").Single();
            sent.Add((name, model, upstream.UsageReported.Single(u => u.RequestId == id)));
        }

        // The gateway writes usage with its audit batches, in the background.
        Assert.True(await RealTime.UntilAsync(async () =>
        {
            var usage = await world.Gateway.Cli(null, "usage", "--json");
            return usage.ExitCode == 0 && JsonDocument.Parse(usage.Stdout).RootElement.GetProperty("total").GetProperty("requests").GetInt64() == 3;
        }, TimeSpan.FromSeconds(20)), world.Gateway.Log);

        var page = await world.SignInAsync();
        var violations = new List<string>();
        page.Console += (_, m) =>
        {
            if (m.Text.Contains("Content Security Policy", StringComparison.OrdinalIgnoreCase))
            {
                violations.Add(m.Text);
            }
        };
        await page.GetByRole(AriaRole.Link, new() { Name = "Usage" }).ClickAsync();
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync("Usage");

        long Tokens(SimUsage u) => u.Input + u.Output + u.CacheCreation + u.CacheRead;
        foreach (var (chart, name) in new[] { ("#usage-keys-chart", "alice-agent"), ("#usage-keys-chart", "bob-agent"), ("#usage-models-chart", "claude-opus-x"), ("#usage-models-chart", "claude-haiku-x") })
        {
            var bar = page.Locator($"{chart} svg rect.bar[data-series='{name}']");
            await Assertions.Expect(bar).ToHaveCountAsync(1); // one day: one piece of one bar
            var expected = sent.Where(s => s.Key == name || s.Model == name).Sum(s => Tokens(s.Usage));
            Assert.Equal(expected.ToString(System.Globalization.CultureInfo.InvariantCulture), await bar.GetAttributeAsync("data-tokens"));
            Assert.True((await bar.BoundingBoxAsync())!.Height > 1, $"{name}: the bar is drawn");
            await Assertions.Expect(page.Locator($"{chart} .legend")).ToContainTextAsync(name);
        }

        var aliceRow = page.Locator("#usage-keys-table tbody tr", new() { HasText = "alice-agent" });
        var aliceTotal = sent.Where(s => s.Key == "alice-agent").Sum(s => Tokens(s.Usage));
        await Assertions.Expect(aliceRow.Locator("td").Last).ToHaveTextAsync(aliceTotal.ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
        await Assertions.Expect(page.Locator("#usage-total")).ToHaveTextAsync(sent.Sum(s => Tokens(s.Usage)).ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
        var svgTitle = await page.Locator("#usage-models-chart svg title").First.TextContentAsync();
        Assert.Equal("Tokens per day and model", svgTitle);

        await page.GetByRole(AriaRole.Link, new() { Name = "30 days" }).ClickAsync();
        await Assertions.Expect(page.Locator("#usage-keys-chart svg rect.bar[data-series='alice-agent']")).ToHaveCountAsync(1);
        Assert.Empty(violations);
        await world.ScreenshotAsync(page, "usage");
        await world.AssertNoSecretAsync(page);
    }
}
