using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Audit;

/// <summary>What one test request was and what came back, as the audit log must show it.</summary>
internal sealed record SentRequest(string? KeyName, string Credential, string Route, string Method, string Path, int Status, int? UpstreamStatus, string? Reason);

/// <summary>
/// A fixed mix of requests through a real gateway (successes, upstream failures, refused client keys), and the
/// checks that the audit log holds exactly those, in order, with nothing secret in it.
/// </summary>
internal static class AuditTraffic
{
    public const string QuerySecret = "qs-CANARY-5e1f0b7d";
    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"BODY-CANARY"}]}""";

    /// <summary>Sets up credential <c>anth</c> and keys <c>agent-a</c>, <c>agent-b</c>; returns every secret used.</summary>
    public static async Task<(string KeyA, string KeyB, List<string> Secrets)> SetUpAsync(GatewayProcess gateway, SimulatedUpstream upstream)
    {
        var secret = "sk-ant-api03-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        await gateway.AddApiKeyAsync("anth", upstream.Url, secret, "--header", "x-api-key", "--format", "{secret}");
        var keyA = await gateway.CreateKeyAsync("agent-a", "anth");
        var keyB = await gateway.CreateKeyAsync("agent-b", "anth");
        return (keyA, keyB, [secret, keyA, keyB, QuerySecret, "BODY-CANARY"]);
    }

    /// <summary>Sends the mix one request after another; returns what each one was and got.</summary>
    public static async Task<List<SentRequest>> SendMixAsync(GatewayProcess gateway, string keyA, string keyB)
    {
        var forged = keyA[..keyA.LastIndexOf('_')] + "_" + new string('x', keyA.Length - keyA.LastIndexOf('_') - 1);
        (string? Key, string? KeyName, string Method, string Path, string? Scenario, int? Upstream)[] plan =
        [
            (keyA, "agent-a", "POST", $"/c/anth/v1/messages?beta=true&token={QuerySecret}", null, 200),
            (keyA, "agent-a", "POST", "/c/anth/v1/messages", null, 200),
            (keyB, "agent-b", "POST", "/c/anth/v1/messages", "rate_limit", 429),
            (keyB, "agent-b", "POST", "/c/anth/v1/messages", "server_error", 500),
            (keyA, "agent-a", "POST", "/c/anth/v1/messages", "overloaded", 529),
            (null, null, "POST", "/c/anth/v1/messages", null, null),
            (forged, null, "POST", "/c/anth/v1/messages", null, null),
            (keyA, "agent-a", "POST", "/c/other/v1/messages", null, null),
            (keyB, "agent-b", "POST", "/c/anth/v1/messages", null, 200),
        ];
        var sent = new List<SentRequest>();
        foreach (var (key, keyName, method, path, scenario, upstreamStatus) in plan)
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
            if (key is not null)
            {
                request.Headers.Add("x-api-key", key);
            }

            if (scenario is not null)
            {
                request.Headers.Add("sim-scenario", scenario);
            }

            using var response = await gateway.Http.SendAsync(request);
            var reason = response.Headers.TryGetValues("latchkey-diagnostic", out var values) ? values.Single().Split(';', 2)[0].Trim() : null;
            var credential = path.Split('/')[2];
            sent.Add(new SentRequest(keyName, credential, "/c/" + credential, method, path.Split('?')[0], (int)response.StatusCode, upstreamStatus, reason));
        }

        // The refusals are the ones this mix means them to be.
        Assert.Equal(["client_key_missing", "client_key_invalid", "client_key_not_allowed"], sent.Where(s => s.UpstreamStatus is null).Select(s => s.Reason));
        Assert.Equal("rate_limited", sent[2].Reason);
        return sent;
    }

    /// <summary>Polls <c>latchkey audit --json</c> until it holds <paramref name="count"/> entries (10 s at most).</summary>
    public static Task<JsonElement[]> WaitForEntriesAsync(GatewayProcess gateway, int count, params string[] filter) =>
        RealTime.UntilAsync(
            async () =>
            {
                var result = await gateway.Cli(null, ["audit", "--json", "--limit", "10000", .. filter]);
                Assert.True(result.ExitCode == 0, result.ToString());
                using var json = JsonDocument.Parse(result.Stdout);
                return json.RootElement.EnumerateArray().Select(e => e.Clone()).ToArray();
            },
            entries => entries.Length >= count, TimeSpan.FromSeconds(10));

    public static void AssertMatches(IReadOnlyList<SentRequest> sent, IReadOnlyList<JsonElement> entries)
    {
        Assert.Equal(sent.Count, entries.Count);
        for (var i = 0; i < sent.Count; i++)
        {
            var e = entries[i];
            var s = sent[i];
            var seen = new SentRequest(
                Text(e, "client_key"), Text(e, "credential")!, Text(e, "route")!, Text(e, "method")!, Text(e, "path")!,
                e.GetProperty("status").GetInt32(), e.GetProperty("upstream_status").ValueKind == JsonValueKind.Null ? null : e.GetProperty("upstream_status").GetInt32(),
                Text(e, "reason"));
            Assert.Equal(s, seen);
            Assert.InRange(e.GetProperty("latency_ms").GetInt64(), 0, 30_000);
            Assert.False(string.IsNullOrEmpty(Text(e, "replica")));
        }
    }

    public static void AssertNoSecrets(string text, IEnumerable<string> secrets, string where)
    {
        foreach (var secret in secrets)
        {
            Assert.False(text.Contains(secret, StringComparison.Ordinal), $"a secret or body appears in {where}");
        }
    }

    private static string? Text(JsonElement e, string name) => e.GetProperty(name).ValueKind == JsonValueKind.Null ? null : e.GetProperty(name).GetString();
}
