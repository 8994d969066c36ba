using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Npgsql;
using Xunit.Abstractions;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// Three real <c>latchkey serve</c> processes on one real PostgreSQL, sharing a key file, serving one OAuth
/// credential from the real oidc-provider with a 2 s access-token lifetime, under continuous load: one refresh per
/// expiry, a replica killed with SIGKILL in the middle of its refresh, and PostgreSQL restarted under the load.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class ReplicasOnPostgresTests(PostgresServer server, ITestOutputHelper output)
{
    /// <summary>Seconds of steady load before the kill; bench/replicas-soak.sh sets it to 60.</summary>
    private static readonly int SteadySeconds = int.TryParse(Environment.GetEnvironmentVariable("LATCHKEY_REPLICA_STEADY_SECONDS"), CultureInfo.InvariantCulture, out var s) ? s : 10;

    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task ThreeReplicas_LoadKillMidRefreshAndPostgresRestart_OneRefreshPerExpiryNoInvalidGrantNothingLost()
    {
        // --- the world: PostgreSQL database, shared key file, authorization server, simulated upstream ---
        using var keys = new TempHome();
        var keyFile = Path.Combine(keys.Root, "team.key");
        await File.WriteAllBytesAsync(keyFile, RandomNumberGenerator.GetBytes(32));
        File.SetUnixFileMode(keyFile, StoreHome.FileMode);
        var url = await server.CreateDatabaseAsync();
        var environment = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url, [StoreSelector.KeyFileVariable] = keyFile };

        var stale = 0;
        await using var upstream = new SimulatedUpstream(new SimBehaviour { Accept = token => NotStale(token) || Interlocked.Increment(ref stale) < 0 });
        await upstream.StartAsync();
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["AT_TTL"] = "2" });
        foreach (var (name, value) in environment)
        {
            lk.Environment[name] = value;
        }

        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource, "--upstream", upstream.Url);
        var replicas = new List<GatewayProcess>();
        try
        {
            foreach (var _ in Enumerable.Range(0, 3))
            {
                replicas.Add(await GatewayProcess.StartAsync(null, environment, "--no-socket"));
            }

            var clientKey = await replicas[0].CreateKeyAsync("team", "mcp");
            var load = new Load(replicas, clientKey);
            await lk.Peer.ResetCountersAsync();

            // --- phase 1: steady load on all three ---
            var steady = Stopwatch.StartNew();
            load.Start();
            await RealTime.ForAsync(TimeSpan.FromSeconds(SteadySeconds)); // load phases run on the real clock of every replica
            var steadyCounters = await lk.Peer.CountersAsync();
            var steadyElapsed = steady.Elapsed;

            // --- phase 2: the replica holding the lease is killed while its refresh waits at the server ---
            await lk.Peer.SetFaultsAsync(new { holdNextRefreshBeforeCommit = true });
            Assert.True(await RealTime.UntilAsync(async () => (await lk.Peer.CountersAsync()).Held > 0, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(20)), "no refresh reached the server");

            var owner = await ScalarAsync<string>(url, "SELECT lease_owner FROM credential WHERE name = 'mcp'");
            var holderPid = int.Parse(owner.Split('/')[2], CultureInfo.InvariantCulture);
            var victim = replicas.Single(r => r.Pid == holderPid);
            load.MarkDead(victim);
            await victim.KillAsync(); // SIGKILL: the lease and the attempt marker stay behind
            await lk.Peer.SetFaultsAsync(new { release = true }); // its held request is abandoned before anything rotated
            var killedAt = load.Clock.Elapsed;
            await RealTime.ForAsync(TimeSpan.FromSeconds(5));

            // --- phase 3: PostgreSQL restarted under the load ---
            var downFrom = load.Clock.Elapsed;
            await server.StopAsync("fast");
            await server.StartAsync();
            var downUntil = load.Clock.Elapsed;
            await RealTime.ForAsync(TimeSpan.FromSeconds(6));
            await load.StopAsync();
            var counters = await lk.Peer.CountersAsync();

            // --- refreshes: one per expiry, no replay, nothing refused ---
            output.WriteLine($"steady {steadyElapsed.TotalSeconds:0.0} s: {steadyCounters.Refresh} refreshes; overall {counters.Refresh} refreshes, {counters.RefreshRequests} refresh requests, {counters.RefreshError} refused; {load.Results.Count} requests, stale tokens {stale}");
            Assert.Equal(0, counters.RefreshError);
            Assert.Empty(counters.Errors);
            Assert.Equal(steadyCounters.Refresh, steadyCounters.RefreshRequests);

            // A refresh commits refresh_after = sent + 75-85 % of the token's life. That life is expires_in (2 s) but
            // never past the JWT's exp, which is iat rounded down to the second + 2 s (TokenEngine.LifetimeOf): between
            // 1 and 2 s. So the grant is never refreshed more often than every 0.75 s (and two refreshes never share an
            // iat second, checked below); a replica notices it is due within its 1 s credential cache, so at least
            // every ~3.5 s. Duplicate refreshes are ruled out exactly by the counters above and the iat check below.
            Assert.InRange(steadyCounters.Refresh, (int)Math.Floor(steadyElapsed.TotalSeconds / 3.5), (int)Math.Floor(steadyElapsed.TotalSeconds / 0.75) + 1);
            Assert.Equal(counters.Refresh + 1, counters.RefreshRequests); // the killed replica's abandoned request, and no other extra
            Assert.Equal(0, stale);
            var issued = upstream.Requests.Select(r => r.Credential).Distinct().Select(t => LatchkeyAgainstPeer.JwtPayload(t!).GetProperty("iat").GetInt64()).ToList();
            Assert.Equal(issued.Count, issued.Distinct().Count()); // never two tokens from the same second: refreshes never overlapped

            // --- requests: none failed except 503s with a diagnostic while PostgreSQL was down ---
            var survivors = replicas.Where(r => r != victim).ToList();
            var toSurvivors = load.Results.Where(r => r.Replica != victim.Pid).ToList();
            var failures = toSurvivors.Where(r => r.Status != 200).ToList();
            var downWindow = failures.Where(r => r.Sent >= downFrom - TimeSpan.FromSeconds(1) && r.Sent <= downUntil + TimeSpan.FromSeconds(3)).ToList();
            output.WriteLine($"{toSurvivors.Count} requests to survivors, {failures.Count} failed ({string.Join(", ", failures.GroupBy(f => $"{f.Status} {f.Reason}").Select(g => $"{g.Key}: {g.Count()}"))}); PostgreSQL down {downFrom.TotalSeconds:0.0}-{downUntil.TotalSeconds:0.0} s");
            Assert.Equal(failures, downWindow);
            Assert.All(failures, f => Assert.True(f.Status == 503 && f.Reason is not null, $"{f.Status} {f.Reason}"));
            Assert.Contains(toSurvivors, r => r.Sent > downUntil + TimeSpan.FromSeconds(3) && r.Status == 200);
            Assert.All(toSurvivors.Where(r => r.Sent > downUntil + TimeSpan.FromSeconds(3)), r => Assert.Equal(200, r.Status));

            // the kill cost the others at most the lease time (a dead holder on this host frees it at once)
            var afterKill = toSurvivors.Where(r => r.Sent >= killedAt - TimeSpan.FromSeconds(3) && r.Sent < downFrom).ToList();
            var slowest = afterKill.Max(r => r.Latency);
            output.WriteLine($"around the kill: {afterKill.Count} requests, slowest {slowest.TotalMilliseconds:0} ms");
            Assert.All(afterKill, r => Assert.Equal(200, r.Status));
            Assert.True(slowest < TimeSpan.FromSeconds(15), $"a survivor waited {slowest} after the kill");

            // --- the audit log: every answer a survivor gave, exactly once, with its status ---
            foreach (var replica in survivors)
            {
                await replica.StopAsync(); // a clean shutdown drains the audit queue
            }

            foreach (var replica in survivors)
            {
                var replicaId = $"{Environment.MachineName}/{replica.Pid}";
                var sent = toSurvivors.Where(r => r.Replica == replica.Pid).GroupBy(r => r.Status).ToDictionary(g => g.Key, g => (long)g.Count());
                var audited = await StatusCountsAsync(url, replicaId);
                Assert.Equal(sent.OrderBy(p => p.Key), audited.OrderBy(p => p.Key));
            }

            var state = await ScalarAsync<string>(url, "SELECT state FROM credential WHERE name = 'mcp'");
            Assert.Equal("ok", state);
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }
        }
    }

    /// <summary>A token more than 2 s past its expiry (JWT <c>exp</c>, whole seconds) is refused, as a real API would.</summary>
    private static bool NotStale(string token)
    {
        try
        {
            var exp = LatchkeyAgainstPeer.JwtPayload(token).GetProperty("exp").GetInt64();
            return DateTimeOffset.UtcNow.ToUnixTimeSeconds() <= exp + 2;
        }
        catch (Exception ex) when (ex is FormatException or JsonException or InvalidOperationException or KeyNotFoundException or Xunit.Sdk.XunitException)
        {
            return false;
        }
    }

    private async Task<T> ScalarAsync<T>(string url, string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private async Task<Dictionary<int, long>> StatusCountsAsync(string url, string replica)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT status, count(*) FROM audit_event WHERE replica = @replica GROUP BY status", connection);
        command.Parameters.AddWithValue("replica", replica);
        await using var reader = await command.ExecuteReaderAsync();
        var counts = new Dictionary<int, long>();
        while (await reader.ReadAsync())
        {
            counts[reader.GetInt32(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    /// <summary>One request of the load: to which replica, when (since the load started), and what came back.</summary>
    private sealed record Answer(int Replica, TimeSpan Sent, int Status, string? Reason, TimeSpan Latency);

    /// <summary>Six workers sending one request after another, round-robin over the live replicas.</summary>
    private sealed class Load(List<GatewayProcess> replicas, string clientKey)
    {
        private const int Workers = 6;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<int, bool> _dead = new();
        private Task? _running;

        public Stopwatch Clock { get; } = new();

        public ConcurrentBag<Answer> Results { get; } = [];

        public void Start()
        {
            Clock.Start();
            _running = Task.WhenAll(Enumerable.Range(0, Workers).Select(w => Task.Run(() => WorkAsync(w))));
        }

        public void MarkDead(GatewayProcess replica) => _dead[replica.Pid] = true;

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _running!;
        }

        private async Task WorkAsync(int worker)
        {
            for (var i = worker; !_stop.IsCancellationRequested; i++)
            {
                var live = replicas.Where(r => !_dead.ContainsKey(r.Pid)).ToList();
                var replica = live[i % live.Count];
                var sent = Clock.Elapsed;
                using var request = new HttpRequestMessage(HttpMethod.Post, "/c/mcp/v1/messages") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
                request.Headers.Add("x-api-key", clientKey);
                try
                {
                    using var response = await replica.Http.SendAsync(request);
                    var reason = response.Headers.TryGetValues("latchkey-diagnostic", out var values) ? values.Single().Split(';', 2)[0].Trim() : null;
                    await response.Content.ReadAsByteArrayAsync();
                    Results.Add(new Answer(replica.Pid, sent, (int)response.StatusCode, reason, Clock.Elapsed - sent));
                }
                catch (HttpRequestException) when (_dead.ContainsKey(replica.Pid))
                {
                    // in flight to the replica that was killed: not counted
                }
                catch (HttpRequestException ex)
                {
                    Results.Add(new Answer(replica.Pid, sent, 0, ex.HttpRequestError.ToString(), Clock.Elapsed - sent));
                }
            }
        }
    }
}
