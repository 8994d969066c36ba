using System.Net;
using System.Security.Cryptography;
using System.Text;
using Latchkey.Store;
using Latchkey.UpstreamSim;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// A client key's limits on a team gateway: three real <c>latchkey serve</c> replicas on one real PostgreSQL, sharing
/// a key file, each request sent to another replica. The limits hold across them, counted in the store.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class KeyLimitsOnPostgresTests(PostgresServer server)
{
    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";
    private const string Secret = "sk-ant-replicas-limits-0c1d";

    [Fact]
    public async Task ThreeReplicas_Rate10PerMinute_ThirtyRequestsSpreadOverThem_ExactlyTenReachTheUpstream()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var team = await Team.StartAsync(server, upstream.Url);
        var key = await team.CreateKeyAsync("ci-bot", "--rate", "10/min");

        // thirty at once, ten to each replica
        var answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => team.SendAsync(i % 3, key)));

        Assert.True(answers.Count(a => a.Status == HttpStatusCode.OK) == 10, string.Join(", ", answers.Select(a => $"{(int)a.Status} {a.Diagnostic}")));
        Assert.Equal(20, answers.Count(a => a.Status == HttpStatusCode.TooManyRequests));
        Assert.All(answers.Where(a => a.Status == HttpStatusCode.TooManyRequests), a =>
        {
            Assert.StartsWith("key_limit_reached; limit=\"rate\"", a.Diagnostic, StringComparison.Ordinal);
            Assert.InRange(a.RetryAfter, 1, 6); // one interval of 10/min is 6 s
        });
        Assert.Equal(10, upstream.Requests.Count(r => r.Credential == Secret));
    }

    [Fact]
    public async Task ThreeReplicas_Concurrent2WithSlowAnswers_NeverMoreThanTwoInFlightAndAKilledReplicasSlotLapses()
    {
        var inFlight = 0;
        var most = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new SimulatedUpstream(new SimBehaviour
        {
            Respond = async context =>
            {
                var now = Interlocked.Increment(ref inFlight);
                InterlockedMax(ref most, now);
                try
                {
                    await release.Task.WaitAsync(context.RequestAborted);
                    context.Response.ContentType = "application/json";
                    await context.Response.WriteAsync("""{"type":"message","usage":{"input_tokens":1,"output_tokens":1}}""", context.RequestAborted);
                }
                finally
                {
                    Interlocked.Decrement(ref inFlight);
                }
            },
        });
        await upstream.StartAsync();
        await using var team = await Team.StartAsync(server, upstream.Url);
        var key = await team.CreateKeyAsync("agent", "--concurrent", "2");

        // twelve at once over the three replicas, while the upstream holds every answer
        var pending = Enumerable.Range(0, 12).Select(i => team.SendAsync(i % 3, key)).ToList();
        Assert.True(await RealTime.UntilAsync(() => upstream.Requests.Count == 2 && pending.Count(p => p.IsCompleted) == 10, TimeSpan.FromSeconds(20)),
            $"expected 2 held and 10 refused, saw {upstream.Requests.Count} at the upstream and {pending.Count(p => p.IsCompleted)} answered");
        var refused = pending.Where(p => p.IsCompleted).Select(p => p.Result).ToList();

        release.SetResult();
        var served = (await Task.WhenAll(pending)).Where(a => a.Status == HttpStatusCode.OK).ToList();

        // the slots were given back: two more go through at once, on any replica
        var again = await Task.WhenAll(team.SendAsync(1, key), team.SendAsync(2, key));

        // a replica killed while it holds a slot: its slot counts until it lapses (written here as the clock would)
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Behaviour.Respond = async context => await held.Task.WaitAsync(context.RequestAborted);
        var before = upstream.Requests.Count;
        var doomed = team.SendAsync(0, key);
        Assert.True(await RealTime.UntilAsync(() => upstream.Requests.Count == before + 1, TimeSpan.FromSeconds(10)), "the doomed request did not reach the upstream");
        await team.Replicas[0].KillAsync();
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => doomed);
        var whileHeld = await HoldTwoAsync(upstream, team, key); // one slot is the dead replica's: one more fits
        await team.SqlAsync($"UPDATE key_lease SET expires_at = expires_at - {(long)KeyLimiterLifetimeMicros()}");
        var afterLapse = await HoldTwoAsync(upstream, team, key); // lapsed: both fit again

        Assert.Equal(2, most);
        Assert.Equal(10, refused.Count);
        Assert.All(refused, a =>
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, a.Status);
            Assert.StartsWith("key_limit_reached; limit=\"concurrent\"", a.Diagnostic, StringComparison.Ordinal);
        });
        Assert.Equal(2, served.Count);
        Assert.All(again, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.TooManyRequests], whileHeld.Select(a => a.Status));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK], afterLapse.Select(a => a.Status));
    }

    /// <summary>Two requests of the key on replicas 1 and 2, the first held at the upstream while the second is sent.</summary>
    private static async Task<Answer[]> HoldTwoAsync(SimulatedUpstream upstream, Team team, string key)
    {
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Behaviour.Respond = async context =>
        {
            await hold.Task.WaitAsync(context.RequestAborted);
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"type":"message"}""", context.RequestAborted);
        };
        var before = upstream.Requests.Count;
        var first = team.SendAsync(1, key);
        Assert.True(await RealTime.UntilAsync(() => upstream.Requests.Count == before + 1, TimeSpan.FromSeconds(10)), "the first request did not reach the upstream");
        var second = team.SendAsync(2, key);
        Assert.True(await RealTime.UntilAsync(() => second.IsCompleted || upstream.Requests.Count == before + 2, TimeSpan.FromSeconds(10)), "the second request was neither refused nor sent");
        hold.SetResult();
        return await Task.WhenAll(first, second);
    }

    private static double KeyLimiterLifetimeMicros() => Latchkey.Gateway.KeyLimiter.SlotLifetime.TotalMicroseconds;

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    private sealed record Answer(int Replica, HttpStatusCode Status, string? Diagnostic, long RetryAfter);

    /// <summary>Three replicas on one fresh database, sharing a key file, with an API-key credential on the upstream.</summary>
    private sealed class Team : IAsyncDisposable
    {
        private readonly TempHome _keys = new();

        private Team(PostgresServer server, string url, Dictionary<string, string> environment)
        {
            Server = server;
            Url = url;
            Environment = environment;
        }

        public PostgresServer Server { get; }

        public string Url { get; }

        public Dictionary<string, string> Environment { get; }

        public List<GatewayProcess> Replicas { get; } = [];

        public static async Task<Team> StartAsync(PostgresServer server, string upstream)
        {
            var url = await server.CreateDatabaseAsync();
            var environment = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url };
            var team = new Team(server, url, environment);
            var keyFile = Path.Combine(team._keys.Root, "team.key");
            await File.WriteAllBytesAsync(keyFile, RandomNumberGenerator.GetBytes(32));
            File.SetUnixFileMode(keyFile, StoreHome.FileMode);
            environment[StoreSelector.KeyFileVariable] = keyFile;
            for (var i = 0; i < 3; i++)
            {
                team.Replicas.Add(await GatewayProcess.StartAsync(null, environment, "--no-socket"));
            }

            await team.Replicas[0].AddApiKeyAsync("sim", upstream, Secret, "--header", "x-api-key", "--format", "{secret}");
            return team;
        }

        public async Task<string> CreateKeyAsync(string name, params string[] limits)
        {
            var result = await Replicas[0].Cli(null, ["keys", "create", name, "--credential", "sim", .. limits]);
            Assert.True(result.ExitCode == 0, result.ToString());
            return result.Stdout.Trim();
        }

        public async Task<Answer> SendAsync(int replica, string key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/sim/v1/messages") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
            request.Headers.Add("x-api-key", key);
            using var response = await Replicas[replica].Http.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            return new Answer(replica, response.StatusCode,
                response.Headers.TryGetValues("latchkey-diagnostic", out var d) ? d.Single() : null,
                response.Headers.RetryAfter?.Delta is { } wait ? (long)wait.TotalSeconds : 0);
        }

        public async Task SqlAsync(string sql)
        {
            await using var connection = new Npgsql.NpgsqlConnection(Server.ConnectionStringFor(Url));
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var replica in Replicas)
            {
                await replica.DisposeAsync();
            }

            _keys.Dispose();
        }
    }
}
