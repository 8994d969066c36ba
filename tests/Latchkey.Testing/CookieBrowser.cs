using System.Net;
using System.Text.RegularExpressions;

namespace Latchkey.Testing;

/// <summary>
/// Follows redirects by hand with a cookie jar, and submits the first form of any HTML page on the way (the
/// device flow's confirmation pages), until a URL starting with <see cref="StopPrefix"/> is reached or a page
/// contains <see cref="StopText"/>. Never logs a query string: codes and states stay out of test output.
/// </summary>
internal sealed partial class CookieBrowser : IDisposable
{
    private readonly SocketsHttpHandler _handler = new() { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer(), UseProxy = false };
    private readonly HttpClient _http;
    private readonly Action<string> _log;

    public CookieBrowser(Action<string>? log = null)
    {
        _http = new HttpClient(_handler) { Timeout = TimeSpan.FromSeconds(30) };
        _log = log ?? (_ => { });
    }

    /// <summary>Where to stop following: the redirect URI (scheme, host, port and path).</summary>
    public string? StopPrefix { get; init; }

    /// <summary>Page text that ends the walk (e.g. "Sign-in Success").</summary>
    public string? StopText { get; init; }

    /// <summary>Walks from <paramref name="start"/>; returns the stop URL (redirect) or the final page's URL.</summary>
    public async Task<(Uri Url, string Body)> WalkAsync(Uri start, CancellationToken ct)
    {
        HttpRequestMessage request = new(HttpMethod.Get, start);
        for (var hop = 0; hop < 30; hop++)
        {
            var url = request.RequestUri!;
            if (StopPrefix is not null && url.AbsoluteUri.StartsWith(StopPrefix, StringComparison.Ordinal))
            {
                request.Dispose();
                return (url, string.Empty);
            }

            using var response = await _http.SendAsync(request, ct);
            request.Dispose();
            var body = await response.Content.ReadAsStringAsync(ct);
            _log($"{(int)response.StatusCode} {response.RequestMessage?.Method} {url.GetLeftPart(UriPartial.Path)}");
            if (response.Headers.Location is { } location)
            {
                request = new HttpRequestMessage(HttpMethod.Get, location.IsAbsoluteUri ? location : new Uri(url, location));
                continue;
            }

            if (StopText is not null && body.Contains(StopText, StringComparison.Ordinal))
            {
                return (url, body);
            }

            if (response.IsSuccessStatusCode && FormRegex().Match(body) is { Success: true } form)
            {
                var action = WebUtility.HtmlDecode(AttributeRegex().Matches(form.Groups["attrs"].Value).FirstOrDefault(m => m.Groups[1].Value == "action")?.Groups[2].Value ?? url.AbsoluteUri);
                var fields = new List<KeyValuePair<string, string>>();
                foreach (Match input in InputRegex().Matches(form.Groups["inner"].Value))
                {
                    var attrs = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                    foreach (Match a in AttributeRegex().Matches(input.Value))
                    {
                        attrs.TryAdd(a.Groups[1].Value, WebUtility.HtmlDecode(a.Groups[2].Value));
                    }

                    if (attrs.TryGetValue("name", out var name))
                    {
                        fields.Add(new(name, attrs.GetValueOrDefault("value") ?? string.Empty));
                    }
                }

                request = new HttpRequestMessage(HttpMethod.Post, new Uri(url, action)) { Content = new FormUrlEncodedContent(fields) };
                continue;
            }

            throw new InvalidOperationException($"HTTP {(int)response.StatusCode} at {url.GetLeftPart(UriPartial.Path)} with neither a redirect nor a form: {Excerpt(body)}");
        }

        throw new InvalidOperationException("too many redirects");
    }

    public void Dispose()
    {
        _http.Dispose();
        _handler.Dispose();
    }

    private static string Excerpt(string body) => body.Length <= 300 ? body : body[..300] + "…";

    [GeneratedRegex("<form(?<attrs>[^>]*)>(?<inner>.*?)</form>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex FormRegex();

    [GeneratedRegex("<input[^>]*>", RegexOptions.Singleline | RegexOptions.IgnoreCase)]
    private static partial Regex InputRegex();

    [GeneratedRegex("""([\w-]+)\s*=\s*"([^"]*)" """, RegexOptions.IgnorePatternWhitespace)]
    private static partial Regex AttributeRegex();
}
