using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// A key holder (or a prompt-injected agent) presents its client key where SDKs put it, and writes the same key
/// somewhere else too: inside another header's value (<c>token=lk_…</c>, quoted, in a list, after a tab, as a cookie
/// parameter), in a header's name, or in the URL. The key must never reach the upstream, which records every header
/// and the raw request line it receives: a header holding it is removed wherever the key stands in it, and a URL
/// holding it (plain or percent-encoded) is refused before anything is sent, and kept out of the log and the audit
/// table as well.
/// </summary>
public sealed class ClientKeySpellingTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Theory]
    [InlineData("X-Custom", "token={0}")]
    [InlineData("X-Custom", "\"{0}\"")]
    [InlineData("X-Custom", "a,{0}")]
    [InlineData("X-Custom", "Bearer\t{0}")]
    [InlineData("X-Custom", "Key id={0}")]
    [InlineData("X-Session", "s={0}; path=/")]
    [InlineData("Cookie", "session=abc; k={0}")]
    [InlineData("anthropic-beta", "tools-2024-04-04,{0}")]
    [InlineData("{0}", "1")]
    [InlineData("x-{0}", "1")]
    public async Task Forward_KeyAlsoWrittenInsideAnotherHeader_NeverReachesTheUpstream(string name, string value)
    {
        var credential = "spell-" + Guid.NewGuid().ToString("N")[..8];
        var (secret, key) = await fixture.AnthropicAsync(credential);

        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/c/{credential}/echo/x",
            "x-api-key: " + key, $"{Format(name, key)}: {Format(value, key)}", "x-kept: still-here");

        Assert.True(answer.Status == 200, $"{answer.Status} {Shown(answer.Body)}");
        var seen = fixture.Upstream.Requests.Last(r => r.Credential == secret);
        Assert.Equal("still-here", seen.Headers["x-kept"]); // headers without a key are forwarded as they were
        var upstreamSaw = seen.RawTarget + "\n" + string.Join("\n", seen.Headers.Select(h => $"{h.Key}: {h.Value}"));
        SecretAssert.Absent(upstreamSaw, "what the upstream received", ("client key", key));
        SecretAssert.Absent(answer.Body, "the answer", ("client key", key));
    }

    [Theory]
    [InlineData("/echo/x?key={0}")]
    [InlineData("/echo/x?a=1&token={0}&b=2")]
    [InlineData("/echo/x?key={1}")] // "lk_" percent-encoded
    [InlineData("/echo/x?key={2}")] // every character percent-encoded
    [InlineData("/echo/x?key={3}")] // percent-encoded twice
    [InlineData("/echo/{0}/x")]
    [InlineData("/echo/x;k={0}")]
    public async Task Forward_KeyInTheUrl_Refused400AndNothingSentLoggedOrAudited(string target)
    {
        var name = "url-" + Guid.NewGuid().ToString("N")[..8];
        var (secret, key) = await fixture.AnthropicAsync(name);
        var spelled = string.Format(System.Globalization.CultureInfo.InvariantCulture, target,
            key, "%6C%6B%5F" + key[3..], string.Concat(key.Select(c => $"%{(int)c:X2}")), string.Concat(key.Select(c => $"%25{(int)c:X2}")));

        var database = SecurityWorld.DatabaseOf(fixture.Gateway.HomePath);
        var refusedBefore = await RefusedRowsAsync(database);
        var answer = await RawHttp.SendAsync(fixture.Gateway.Url, "GET", $"/c/{name}{spelled}", "x-api-key: " + key);

        Assert.True(answer.Status == 400, $"{target}: {answer.Status} {Shown(answer.Body)}");
        var latchkey = JsonNode.Parse(answer.Body)!["latchkey"]!;
        Assert.Equal("client_key_in_url", (string?)latchkey["reason"]);
        Assert.Contains("header", (string?)latchkey["fix"], StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Credential == secret);
        SecretAssert.Absent(fixture.Gateway.Log, "the gateway's log", ("client key", key));
        // The audit writer lingers before writing a batch: wait until this refusal's row is there, then read them all.
        Assert.True(await RealTime.UntilAsync(async () => await RefusedRowsAsync(database) > refusedBefore, TimeSpan.FromSeconds(10)), "the refusal was never audited");
        var audited = await SecurityWorld.Sqlite3Async(database, "SELECT coalesce(group_concat(path || ' ' || route, char(10)), '') FROM audit_event;");
        SecretAssert.Absent(audited, "the audit table", ("client key", key), ("client key's secret part", key[16..]));
    }

    private static async Task<long> RefusedRowsAsync(string database) =>
        long.Parse(await SecurityWorld.Sqlite3Async(database, "SELECT count(*) FROM audit_event WHERE status = 400;"), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>An answer fit for a failure message: Latchkey's reason, never the body (the upstream's echo of a request
    /// that went through holds the secret and the key in some spelling).</summary>
    private static string Shown(string body)
    {
        try
        {
            return (string?)JsonNode.Parse(body)?["latchkey"]?["reason"] ?? "(the upstream's answer, not shown)";
        }
        catch (System.Text.Json.JsonException)
        {
            return "(not JSON, not shown)";
        }
    }

    private static string Format(string template, string key) => string.Format(System.Globalization.CultureInfo.InvariantCulture, template, key);
}
