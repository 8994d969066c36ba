using System.Diagnostics;
using Latchkey.Audit;
using Latchkey.Store;

/// <summary>
/// The audit log's append cost in isolation: batches of audit entries (shaped like the gateway's: a credential
/// route, a client key, a status) appended to a fresh SQLite store, as the gateway's background writer does.
/// Prints entries per second and CPU microseconds per entry.
/// </summary>
internal static class AuditBench
{
    public static async Task<int> RunAsync(int entries, int batchSize)
    {
        var root = Directory.CreateTempSubdirectory("latchkey-audit-bench-").FullName;
        try
        {
            var home = new StoreHome(Path.Combine(root, "home"));
            await using var store = SqliteCredentialStore.Open(home, TimeProvider.System);
            var now = DateTimeOffset.UtcNow;
            AuditEntry Entry(int i) => new(now.AddMilliseconds(i), "agent-key", "anthropic", "/c/anthropic", "POST", "/c/anthropic/v1/messages", 200, 200, 3, null, $"{Environment.MachineName}/{Environment.ProcessId}");
            await store.AppendAsync([.. Enumerable.Range(0, batchSize).Select(Entry)], default); // warm-up
            var batches = Enumerable.Range(0, entries / batchSize).Select(b => Enumerable.Range(b * batchSize, batchSize).Select(Entry).ToList()).ToList();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            foreach (var batch in batches)
            {
                await store.AppendAsync(batch, default);
            }

            clock.Stop();
            var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            var n = batches.Count * batchSize;
            Console.WriteLine($"audit append: {n} entries in batches of {batchSize}: {Stats.F(n / clock.Elapsed.TotalSeconds, "0")} entries/s, {Stats.F(used.TotalMicroseconds / n, "0.0")} us CPU per entry, {Stats.F(clock.Elapsed.TotalMicroseconds / n, "0.0")} us wall per entry");
            return 0;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
