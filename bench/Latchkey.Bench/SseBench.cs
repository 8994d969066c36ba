using System.Diagnostics;
using System.Text;

/// <summary>
/// Time to the first Server-Sent Event: from sending a streaming <c>/v1/messages</c> request to reading the first
/// <c>data:</c> line, over one kept-alive connection, for each target in alternating order.
/// </summary>
internal static class SseBench
{
    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""";

    /// <param name="targets">LABEL=URL|x-api-key value, the URL being the full /v1/messages URL.</param>
    public static async Task<int> RunAsync(List<string> targets, int rounds)
    {
        var parsed = targets.Select(t =>
        {
            var eq = t.IndexOf('=', StringComparison.Ordinal);
            var bar = t.LastIndexOf('|');
            return (Label: t[..eq], Url: new Uri(t[(eq + 1)..bar]), Key: t[(bar + 1)..]);
        }).ToList();
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = 1 });
        var times = parsed.ToDictionary(t => t.Label, _ => new List<double>());
        for (var round = -5; round < rounds; round++) // 5 warm-up rounds
        {
            for (var i = 0; i < parsed.Count; i++)
            {
                var t = parsed[(i + Math.Max(round, 0)) % parsed.Count];
                var ms = await FirstEventAsync(http, t.Url, t.Key);
                if (round >= 0)
                {
                    times[t.Label].Add(ms);
                }
            }
        }

        foreach (var (label, list) in times)
        {
            list.Sort();
            Console.WriteLine($"{label} {Stats.F(Stats.Percentile(list, 50), "0.000")} {Stats.F(Stats.Percentile(list, 99), "0.000")}");
        }

        return 0;
    }

    private static async Task<double> FirstEventAsync(HttpClient http, Uri url, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        request.Headers.Add("anthropic-version", "2023-06-01");
        var clock = Stopwatch.StartNew();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream);
        double first = double.NaN;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (double.IsNaN(first) && line.StartsWith("data:", StringComparison.Ordinal))
            {
                first = clock.Elapsed.TotalMilliseconds;
            }
        }

        return first;
    }
}
