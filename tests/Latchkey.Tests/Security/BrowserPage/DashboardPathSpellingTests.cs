using System.Net.Sockets;
using System.Text;
using Latchkey.Tests.Gateway;

namespace Latchkey.Tests.Security.BrowserPage;

/// <summary>
/// A web page reaches the dashboard through DNS rebinding (its own host name resolving to 127.0.0.1: a foreign
/// <c>Host</c>) or posts to it from its own origin (a foreign <c>Origin</c>). Routing matches <c>/ui</c> in any case and
/// Kestrel decodes <c>%75</c> to <c>u</c>, so every spelling of the dashboard's path must meet the same guard as
/// <c>/ui/</c>: 403 for a foreign Host or Origin, and the same security headers on every answer. Requests are sent
/// byte for byte over a raw socket, so no client library normalises the path first.
/// </summary>
public sealed class DashboardPathSpellingTests(OneGateway fixture) : IClassFixture<OneGateway>
{
    private readonly GatewayProcess _gateway = fixture.Gateway;

    public static TheoryData<string> Spellings => new() { "/ui/", "/UI/", "/Ui/", "/uI/", "/%75i/", "/%55%49/", "/UI/keys", "/Ui/s/AAAAAAAAAAAAAAAAAAAAAA/keys", "/UI/style.css", "/./UI/" };

    [Theory]
    [MemberData(nameof(Spellings))]
    public async Task Dashboard_AnySpellingWithAForeignHost_RefusedLikeUiWithTheSameHeaders(string path)
    {
        var reference = await SendAsync("GET", "/ui/", "attacker.example");
        var answer = await SendAsync("GET", path, "attacker.example");

        Assert.Equal(403, reference.Status);
        Assert.True(answer.Status == 403, $"GET {path} with Host attacker.example answered {answer.Status}, where /ui/ answers 403");
        Assert.Contains("Wrong address", answer.Body, StringComparison.Ordinal);
        AssertSecurityHeaders(answer, path);
    }

    [Theory]
    [MemberData(nameof(Spellings))]
    public async Task Dashboard_AnySpellingPostedFromAForeignOrigin_RefusedLikeUi(string path)
    {
        var session = path.TrimEnd('/') + (path.EndsWith("/keys", StringComparison.Ordinal) || path.EndsWith(".css", StringComparison.Ordinal) ? string.Empty : "/session");
        var host = new Uri(_gateway.Url).Authority;
        var answer = await SendAsync("POST", session, host, "http://attacker.example", "token=AAAAAAAAAAAAAAAAAAAAAAAAAAAA");

        Assert.True(answer.Status == 403 && answer.Body.Contains("came from another site", StringComparison.Ordinal),
            $"POST {session} with Origin http://attacker.example was not refused as cross-origin: {answer.Status} \"{Title(answer.Body)}\"");
        AssertSecurityHeaders(answer, session);
    }

    [Theory]
    [MemberData(nameof(Spellings))]
    public async Task Dashboard_AnySpellingFromThisMachine_CarriesTheSecurityHeaders(string path)
    {
        var answer = await SendAsync("GET", path, new Uri(_gateway.Url).Authority);

        Assert.True(answer.Status is 200 or 401, $"GET {path} answered {answer.Status}");
        AssertSecurityHeaders(answer, path);
    }

    private static void AssertSecurityHeaders(Answer answer, string path)
    {
        foreach (var (name, value) in new[]
        {
            ("cache-control", "no-store"), ("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("referrer-policy", "same-origin"),
        })
        {
            Assert.True(answer.Headers.TryGetValue(name, out var got) && got == value, $"{path}: {name} is '{got}', not '{value}'");
        }

        Assert.True(answer.Headers.TryGetValue("content-security-policy", out var csp) && csp.Contains("frame-ancestors 'none'", StringComparison.Ordinal), $"{path}: no Content-Security-Policy");
    }

    private static string Title(string html) => System.Text.RegularExpressions.Regex.Match(html, "<title>(.*?)</title>") is { Success: true } m ? m.Groups[1].Value : html[..Math.Min(80, html.Length)];

    /// <summary>One HTTP/1.1 request, written as is (the path is not normalised or re-encoded), and its answer.</summary>
    private async Task<Answer> SendAsync(string method, string path, string host, string? origin = null, string? form = null)
    {
        var gateway = new Uri(_gateway.Url);
        using var client = new TcpClient();
        await client.ConnectAsync(gateway.Host, gateway.Port);
        await using var stream = client.GetStream();
        var request = new StringBuilder($"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        if (origin is not null)
        {
            request.Append($"Origin: {origin}\r\n");
        }

        var body = form is null ? [] : Encoding.ASCII.GetBytes(form);
        if (form is not null)
        {
            request.Append($"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {body.Length}\r\n");
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.Append("\r\n").ToString()));
        await stream.WriteAsync(body);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var text = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var lines = text[..split].Split("\r\n");
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).GroupBy(p => p[0].Trim().ToLowerInvariant()).ToDictionary(g => g.Key, g => string.Join(", ", g.Select(p => p[1].Trim())));
        return new Answer(int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), headers, text[(split + 4)..]);
    }

    private sealed record Answer(int Status, Dictionary<string, string> Headers, string Body);
}

/// <summary>One real <c>latchkey serve</c> shared by the spelling cases (they only read).</summary>
public sealed class OneGateway : IAsyncLifetime
{
    internal GatewayProcess Gateway { get; private set; } = null!;

    public async Task InitializeAsync() => Gateway = await GatewayProcess.StartAsync();

    public async Task DisposeAsync() => await Gateway.DisposeAsync();
}
