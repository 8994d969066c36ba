using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// Anyone who reaches the gateway's port floods it with requests it refuses, from a thousand addresses (every
/// address of 127.0.0.0/8 is this machine, and the client socket is bound to each in turn), with 2 KB paths, to
/// fill the disk through the audit table and the gateway's log, and writes control characters into a path to forge
/// log lines or send escape sequences to whoever reads the log in a terminal. The audit table (counted with the real
/// <c>sqlite3</c>) and the log stay within their budgets, every served request is still recorded, and the log holds
/// no control character.
/// </summary>
public sealed class RefusedFloodTests(Xunit.Abstractions.ITestOutputHelper output)
{
    // The budgets docs/audit.md and docs/gateway.md promise: refused requests recorded per source (a burst of 100,
    // then 10 a second; every loopback address is one source) and logged per source (20, then 1 a second).
    private const int AuditBurst = 100;
    private const double AuditPerSecond = 10;
    private const int LogBurst = 20;
    private const double LogPerSecond = 1;

    [Fact]
    public async Task Flood_ThousandLoopbackAddressesWith2KBPaths_AuditTableAndLogStayBoundedAndEveryServedRequestIsRecorded()
    {
        const int Refused = 8_000;
        const int Served = 200;
        await using var upstream = new SimulatedUpstream { RecordRequests = false };
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("anthropic", upstream.Url, "sk-ant-api03-refused-flood-secret");
        var key = await gateway.CreateKeyAsync("agent", "anthropic");
        var logBefore = gateway.Log.Length;
        var longPath = new string('p', 2_000);
        string[] shapes = [$"/c/anthropic/{longPath}", $"/c/nobody/{longPath}", $"/r/router/{longPath}", $"/mcp/server/{longPath}", $"/c/anthropic/v1/%2e%2e/{longPath}"];

        var started = Stopwatch.StartNew();
        var work = Enumerable.Range(0, Refused).Select(i => (Index: i, Served: false))
            .Concat(Enumerable.Range(0, Served).Select(i => (Index: i * (Refused / Served), Served: true)))
            .OrderBy(w => w.Index).ToList();
        var servedStatuses = new List<int>();
        var refusedStatuses = new int[Refused];
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
                lock (servedStatuses)
                {
                    servedStatuses.Add((int)response.StatusCode);
                }
            }
            else
            {
                // 1,000 source addresses: 127.0.0.2 ... 127.0.3.233
                var from = new IPAddress([127, 0, (byte)((w.Index % 1000 + 2) / 256), (byte)((w.Index % 1000 + 2) % 256)]);
                var answer = await RawHttp.SendFromAsync(from, gateway.Url, "GET", shapes[w.Index % shapes.Length], w.Index % 2 == 0 ? "x-api-key: lk_not_a_key" : "x-padding: p");
                refusedStatuses[w.Index] = answer.Status;
            }
        });
        Assert.Equal(Enumerable.Repeat(200, Served), servedStatuses);
        Assert.All(refusedStatuses, s => Assert.InRange(s, 400, 499));
        var seconds = started.Elapsed.TotalSeconds;

        // The summaries of what was not recorded come within the writers' summary interval; a clean stop writes the rest.
        var database = SecurityWorld.DatabaseOf(gateway.HomePath);
        await RealTime.UntilAsync(async () => await CountAsync(database, "reason = 'refused_not_recorded'") > 0, TimeSpan.FromSeconds(40), TimeSpan.FromMilliseconds(250));

        await gateway.StopAsync();
        seconds = Math.Max(seconds, started.Elapsed.TotalSeconds);

        var servedRows = await CountAsync(database, "client_key = 'agent' AND status = 200");
        var refusedRows = await CountAsync(database, "status BETWEEN 400 AND 499 AND reason <> 'refused_not_recorded'");
        var summaryRows = await CountAsync(database, "reason = 'refused_not_recorded'");
        var tableBytes = long.Parse(await SecurityWorld.Sqlite3Async(database,
            "SELECT coalesce(sum(length(CAST(event_id AS BLOB)) + length(CAST(coalesce(client_key, '') AS BLOB)) + length(CAST(coalesce(credential, '') AS BLOB)) + length(CAST(route AS BLOB)) + length(CAST(method AS BLOB)) + length(CAST(path AS BLOB)) + length(CAST(coalesce(reason, '') AS BLOB)) + length(CAST(replica AS BLOB))), 0) FROM audit_event;"), CultureInfo.InvariantCulture);
        var log = gateway.Log[logBefore..];
        var refusedLines = log.Split('\n').Count(l => l.Contains("Refused a request for", StringComparison.Ordinal));

        var auditBudget = AuditBurst + (long)Math.Ceiling(AuditPerSecond * seconds);
        var logBudget = LogBurst + (long)Math.Ceiling(LogPerSecond * seconds);
        var message = $"{seconds:0.#} s: served rows {servedRows}, refused rows {refusedRows} (budget {auditBudget}), summary rows {summaryRows}, {tableBytes} bytes of text; "
            + $"log {log.Length} characters, {refusedLines} refused lines (budget {logBudget})";
        output.WriteLine(message);
        Assert.True(servedRows == Served, message); // every served request, none crowded out
        Assert.True(refusedRows <= auditBudget, message);
        Assert.True(summaryRows <= 10 * (2 + (long)(seconds / 10)), message); // at most ten summaries each ten seconds
        Assert.True(tableBytes <= (Served + auditBudget + summaryRows) * 1_300L, message);
        Assert.True(refusedLines <= logBudget, message);
        Assert.True(log.Length <= (logBudget * 400) + 64 * 1024, message); // each line quotes at most 200 characters of the path
    }

    [Fact]
    public async Task Dashboard_FiveHundredRefusedRequestsFromOneSource_LogStaysWithinTheBudget()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        var logBefore = gateway.Log.Length;
        var started = Stopwatch.StartNew();

        // A page in the browser (DNS rebinding: a foreign Host) and a cross-site form, over and over.
        for (var i = 0; i < 500; i++)
        {
            var answer = i % 2 == 0
                ? await RawHttp.SendAsync(gateway.Url, "GET", $"/ui/flood-{i}", "Host: attacker.example")
                : await RawHttp.SendAsync(gateway.Url, "POST", $"/ui/keys/flood-{i}", "Origin: http://attacker.example", "Content-Length: 0");
            Assert.True(answer.Status == 403, $"request {i}: {answer.Status}");
        }

        var seconds = started.Elapsed.TotalSeconds;
        var log = gateway.Log[logBefore..];
        var refusedLines = log.Split('\n').Count(l => l.Contains("Refused a request for", StringComparison.Ordinal) && l.Contains("the dashboard:", StringComparison.Ordinal));
        var budget = LogBurst + (long)Math.Ceiling(LogPerSecond * (seconds + 1));
        output.WriteLine($"{seconds:0.#} s: {refusedLines} dashboard refusal lines (budget {budget})");
        Assert.InRange(refusedLines, 1, budget);
    }

    [Fact]
    public async Task Log_RequestPathWithCarriageReturnAndEscape_WritesNoControlCharacterAndForgesNoLine()
    {
        await using var gateway = await GatewayProcess.StartAsync();

        foreach (var target in new[]
        {
            "/c/x/a%0d%0a2031-01-01T00:00:00.000Z%20warn:%20FORGED-LINE",
            "/c/x/%1b[31mRED%1b[0m%1b]0;TITLE%07",
            "/c/%0d%0aFORGED-NAME/x",
            "/r/x/%0dFORGED-CR%1b[2J",
            "/mcp/x/%E2%80%A8FORGED-LS%C2%85",
        })
        {
            var answer = await RawHttp.SendAsync(gateway.Url, "GET", target);
            Assert.InRange(answer.Status, 400, 404);
        }

        // Every refusal is logged (five far below the log budget); wait for the lines, then read the log.
        await RealTime.UntilAsync(() => gateway.Log.Split('\n').Count(l => l.Contains("Refused a request for", StringComparison.Ordinal)) >= 5, TimeSpan.FromSeconds(10));
        var log = gateway.Log;
        var controls = log.Where(c => (char.IsControl(c) && c != '\n') || c is '\u2028' or '\u2029').Select(c => $"U+{(int)c:X4}").Distinct().ToList();
        Assert.True(controls.Count == 0, "control characters in the log: " + string.Join(", ", controls));
        Assert.Contains("FORGED-LINE", log, StringComparison.Ordinal); // the refusal was logged...
        foreach (var line in log.Split('\n').Where(l => l.Contains("FORGED", StringComparison.Ordinal)))
        {
            Assert.Contains("Refused a request for", line, StringComparison.Ordinal); // ...inside its own line, never as a line of its own
        }
    }

    private static async Task<long> CountAsync(string database, string where) =>
        long.Parse(await SecurityWorld.Sqlite3Async(database, $"SELECT count(*) FROM audit_event WHERE {where};"), CultureInfo.InvariantCulture);
}
