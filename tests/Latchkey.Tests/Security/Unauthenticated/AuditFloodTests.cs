using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// Anyone who reaches the gateway's port can send requests it refuses. Those requests are audited (that is what an
/// audit is for), but they must not be able to flood the audit table with huge columns or push the entries of
/// requests that were served out of the queue. And the MCP proxy's requests are audited like every other route.
/// Real gateway, real HTTP, the table counted with the real <c>sqlite3</c>.
/// </summary>
public sealed partial class AuditFloodTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Secret = "sk-ant-api03-audit-flood-test-secret";

    // The bounds docs/audit.md promises: refused requests recorded per source (a burst of 100, then 10 a second),
    // the summary entry's reason, and the longest value of each text column.
    private const int Burst = 100;
    private const double PerSecond = 10;
    private const string RefusedNotRecorded = "refused_not_recorded";
    private static readonly int[] MaxLengths = [128, 128, 160, 32, 512, 64, 128]; // client_key, credential, route, method, path, reason, replica

    [Fact]
    public async Task Audit_McpProxyRequests_AppearInLatchkeyAuditJson()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await SecurityWorld.CreateAsync(gateway.HomePath, "tracker", CredentialKind.OAuth, SecurityWorld.McpServer(upstream.Url + "/echo/mcp"),
            new CredentialSecrets { AccessToken = "mcp-token", RefreshToken = "rt" });
        var key = await gateway.CreateKeyAsync("agent", "tracker");

        using (var served = new HttpRequestMessage(HttpMethod.Post, "/mcp/tracker") { Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", Encoding.UTF8, "application/json") })
        {
            served.Headers.Add("Authorization", "Bearer " + key);
            using var response = await gateway.Http.SendAsync(served);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var keyless = await gateway.Http.GetAsync("/mcp/tracker"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, keyless.StatusCode);
        }

        var entries = await WaitForAuditAsync(gateway, 2, "tracker");
        var post = Assert.Single(entries, e => e.GetProperty("method").GetString() == "POST");
        Assert.Equal(("agent", "/mcp/tracker", "/mcp/tracker", 200, 200), (post.GetProperty("client_key").GetString(), post.GetProperty("route").GetString(), post.GetProperty("path").GetString(), post.GetProperty("status").GetInt32(), post.GetProperty("upstream_status").GetInt32()));
        var get = Assert.Single(entries, e => e.GetProperty("method").GetString() == "GET");
        Assert.Equal((JsonValueKind.Null, "/mcp/tracker", 401, "client_key_missing"), (get.GetProperty("client_key").ValueKind, get.GetProperty("route").GetString(), get.GetProperty("status").GetInt32(), get.GetProperty("reason").GetString()));
    }

    [Fact]
    public async Task Audit_TenThousandRefusedRequestsWithHugePathsAndHeaders_TableStaysBoundedAndEveryServedRequestIsRecorded()
    {
        const int Refused = 10_000;
        const int Served = 200;
        await using var upstream = new SimulatedUpstream { RecordRequests = false };
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("anthropic", upstream.Url, Secret);
        var key = await gateway.CreateKeyAsync("agent", "anthropic");
        var longName = new string('n', 3_900);
        var longPath = new string('p', 3_900);
        var padding = new string('h', 8_000);
        string[] shapes = [$"/c/{longName}/{longPath}", $"/r/{longName}/{longPath}", $"/mcp/{longName}/{longPath}", $"/c/anthropic/{longPath}{longPath}"];

        var started = Stopwatch.StartNew();
        var refusedStatuses = new int[Refused];
        var servedStatuses = new int[Served];
        // The served requests are spread through the flood, one after every 50 refused ones.
        var work = new List<(int Index, bool Served)>();
        for (var i = 0; i < Refused; i++)
        {
            work.Add((i, false));
            if (i % (Refused / Served) == 0)
            {
                work.Add((i / (Refused / Served), true));
            }
        }

        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (w, ct) =>
        {
            if (w.Served)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/c/anthropic/v1/messages")
                {
                    Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
                };
                request.Headers.Add("Authorization", "Bearer " + key);
                using var response = await gateway.Http.SendAsync(request, ct);
                servedStatuses[w.Index] = (int)response.StatusCode;
            }
            else
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, shapes[w.Index % shapes.Length]);
                request.Headers.TryAddWithoutValidation("x-padding", padding);
                if (w.Index % 2 == 0)
                {
                    request.Headers.TryAddWithoutValidation("Authorization", "Bearer lk_not_a_key_" + padding[..4_000]);
                }

                using var response = await gateway.Http.SendAsync(request, ct);
                refusedStatuses[w.Index] = (int)response.StatusCode;
            }
        });
        Assert.All(servedStatuses, s => Assert.Equal(200, s));
        Assert.All(refusedStatuses, s => Assert.InRange(s, 400, 499));

        // The summary of what was not recorded is written within the writer's summary interval; then a clean stop
        // writes whatever is still queued.
        var database = SecurityWorld.DatabaseOf(gateway.HomePath);
        await RealTime.UntilAsync(async () => await CountAsync(database, $"reason = '{RefusedNotRecorded}'") > 0, TimeSpan.FromSeconds(40), TimeSpan.FromMilliseconds(250));

        await gateway.StopAsync();
        var seconds = started.Elapsed.TotalSeconds;

        var rows = await CountAsync(database, "1");
        var servedRows = await CountAsync(database, "client_key = 'agent' AND status = 200 AND upstream_status = 200");
        var refusedRows = await CountAsync(database, $"status BETWEEN 400 AND 499 AND upstream_status IS NULL");
        var summaries = (await SecurityWorld.Sqlite3Async(database, $"SELECT path FROM audit_event WHERE reason = '{RefusedNotRecorded}';"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        var notRecorded = summaries.Sum(s => long.Parse(SummaryLine().Match(s) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException($"unexpected summary '{s}'"), CultureInfo.InvariantCulture));
        var longest = await SecurityWorld.Sqlite3Async(database,
            "SELECT max(length(client_key)), max(length(credential)), max(length(route)), max(length(method)), max(length(path)), max(length(reason)), max(length(replica)) FROM audit_event;");
        var textBytes = long.Parse(await SecurityWorld.Sqlite3Async(database,
            "SELECT coalesce(sum(length(CAST(event_id AS BLOB)) + length(CAST(coalesce(client_key, '') AS BLOB)) + length(CAST(coalesce(credential, '') AS BLOB)) + length(CAST(route AS BLOB)) + length(CAST(method AS BLOB)) + length(CAST(path AS BLOB)) + length(CAST(coalesce(reason, '') AS BLOB)) + length(CAST(replica AS BLOB))), 0) FROM audit_event;"), CultureInfo.InvariantCulture);

        var budget = Burst + (long)Math.Ceiling(PerSecond * seconds);
        var message = $"rows {rows}, served {servedRows}, refused {refusedRows} (budget {budget} in {seconds:0.#} s), not recorded {notRecorded} in {summaries.Count} summaries, longest {longest}, {textBytes} bytes of text";
        output.WriteLine(message);
        Assert.True(servedRows == Served, message); // every served request, none crowded out
        Assert.True(refusedRows <= budget, message);
        Assert.True(refusedRows + notRecorded == Refused, message); // each refused request recorded or counted, never silently lost
        Assert.True(longest.Split('|').Zip(MaxLengths)
            .All(p => p.First.Length == 0 || int.Parse(p.First, CultureInfo.InvariantCulture) <= p.Second), message);
        Assert.True(textBytes <= rows * 1_300L, message); // about 1.2 KB of text at most per row
        Assert.DoesNotContain(Secret, await SecurityWorld.Sqlite3Async(database, "SELECT group_concat(path || route || coalesce(reason, '')) FROM audit_event;"), StringComparison.Ordinal);
    }

    private static async Task<long> CountAsync(string database, string where) =>
        long.Parse(await SecurityWorld.Sqlite3Async(database, $"SELECT count(*) FROM audit_event WHERE {where};"), CultureInfo.InvariantCulture);

    /// <summary>The gateway's audit entries for <paramref name="credential"/>, once there are <paramref name="count"/>
    /// (it writes them in the background) or 15 s have passed.</summary>
    private static Task<List<JsonElement>> WaitForAuditAsync(GatewayProcess gateway, int count, string credential) =>
        RealTime.UntilAsync(
            async () =>
            {
                var result = await gateway.Cli(null, "audit", "--json", "--credential", credential);
                Assert.True(result.ExitCode == 0, result.ToString());
                using var json = JsonDocument.Parse(result.Stdout);
                return json.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
            },
            entries => entries.Count >= count, TimeSpan.FromSeconds(15), TimeSpan.FromMilliseconds(200));

    [GeneratedRegex(@"^(\d+) refused requests from .+ not recorded$")]
    private static partial Regex SummaryLine();
}
