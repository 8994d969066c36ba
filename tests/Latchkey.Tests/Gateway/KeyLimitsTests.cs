using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Audit;
using Latchkey.Gateway;
using Latchkey.Hosting;
using Latchkey.Store;
using Latchkey.UpstreamSim;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Latchkey.Usage;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// A client key's limits, enforced by a real gateway (Kestrel, real sockets, the SQLite store) on a fake clock: over a
/// limit the agent gets 429 with <c>retry-after</c>, an Anthropic-shaped error and <c>latchkey-diagnostic:
/// key_limit_reached; limit="..."</c>, and the simulated upstream never sees the request.
/// </summary>
/// <remarks>
/// The gateway's clock is one the test moves forward (<see cref="MovableClock"/>): its timers are the system's, so the
/// gateway's audit writer works as in production, while the time the limits count on jumps when the test says.
/// </remarks>
public sealed class KeyLimitsTests : IAsyncLifetime
{
    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";
    private readonly TempHome _home = new();
    private readonly MovableClock _time = new();
    private readonly SimulatedUpstream _upstream = new();
    private GatewayServer _gateway = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        await _upstream.StartAsync();
        await using (var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), _time))
        {
            await store.CreateAsync(new NewCredential("sim", CredentialKind.ApiKey,
                new CredentialMetadata { Upstream = _upstream.Url, Injection = new InjectionRule("x-api-key", "{secret}") },
                new CredentialSecrets { ApiKey = "sk-ant-limits-test" }), default);
        }

        _gateway = GatewayServer.Create(new StoreHome(_home.Path), new GatewayOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, _time, LogLevel.Warning);
        await _gateway.StartAsync(default);
        _http = new HttpClient { BaseAddress = new Uri(_gateway.Addresses.First(a => a.StartsWith("http://", StringComparison.Ordinal))), Timeout = TimeSpan.FromSeconds(30) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
        _home.Dispose();
    }

    [Fact]
    public async Task Request_OverTheRate_429ExplainedAndNeverSentUntilTheBucketRefills()
    {
        var key = await CreateKeyAsync("ci-bot", new ClientKeyLimits(new RateLimit(3, TimeSpan.FromMinutes(1)), null, null));

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 5; i++)
        {
            var response = await SendAsync(key);
            statuses.Add(response.StatusCode);
            refused = response.StatusCode == HttpStatusCode.TooManyRequests ? response : refused;
        }

        var sentBefore = _upstream.Requests.Count;
        _time.Advance(TimeSpan.FromSeconds(19));
        var early = await SendAsync(key);
        _time.Advance(TimeSpan.FromSeconds(1));
        var onTime = await SendAsync(key);

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal(3, sentBefore);
        Assert.Equal("20", refused!.Headers.RetryAfter!.ToString());
        var diagnostic = refused.Headers.GetValues("latchkey-diagnostic").Single();
        Assert.StartsWith("key_limit_reached; limit=\"rate\"; credential=\"sim\"; status=\"429\"; retry-after=\"20\"", diagnostic, StringComparison.Ordinal);
        Assert.Contains("latchkey keys set ci-bot --rate N/min", diagnostic, StringComparison.Ordinal);
        Assert.Equal("true", refused.Headers.GetValues("x-should-retry").Single());
        using var body = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("error", body.RootElement.GetProperty("type").GetString());
        Assert.Equal("rate_limit_error", body.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("rate limit of 3/min", body.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("rate", body.RootElement.GetProperty("latchkey").GetProperty("limit").GetString());
        Assert.Equal(HttpStatusCode.TooManyRequests, early.StatusCode);
        Assert.Equal(HttpStatusCode.OK, onTime.StatusCode);
        Assert.Equal(4, _upstream.Requests.Count);

        // audited like the gateway's other refusals: the key's name and the reason, status 429
        await _gateway.DisposeAsync();
        await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), _time);
        var audited = await store.QueryAsync(new AuditQuery(), default);
        Assert.Equal(3, audited.Count(e => e.Status == 429 && e.Reason == KeyLimitRefusal.Code && e.ClientKey == "ci-bot"));
        Assert.Equal(4, audited.Count(e => e.Status == 200));
    }

    [Fact]
    public async Task Request_OverTheConcurrencyLimit_429UntilAnAnswerEndsOrItsAgentGoesAway()
    {
        var key = await CreateKeyAsync("agent", new ClientKeyLimits(null, null, 2));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = 0;
        _upstream.Behaviour.Respond = async context =>
        {
            Interlocked.Increment(ref arrived);
            await release.Task.WaitAsync(context.RequestAborted);
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", context.RequestAborted);
        };
        var limiter = _gateway.Services.GetRequiredService<KeyLimiter>();

        var first = SendAsync(key);
        using var abandon = new CancellationTokenSource();
        var second = SendAsync(key, abandon.Token);
        Assert.True(await RealTime.UntilAsync(() => Volatile.Read(ref arrived) == 2, TimeSpan.FromSeconds(10)), "two requests did not reach the upstream");
        var third = await SendAsync(key);

        await abandon.CancelAsync(); // the agent of the second goes away: its slot is given back
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
        Assert.True(await RealTime.UntilAsync(() => limiter.SlotsHeld == 1, TimeSpan.FromSeconds(10)), "the abandoned request's slot was not given back");
        var fourth = SendAsync(key);
        Assert.True(await RealTime.UntilAsync(() => Volatile.Read(ref arrived) == 3, TimeSpan.FromSeconds(10)), "the fourth request did not reach the upstream");
        var fifth = await SendAsync(key);

        release.SetResult(); // both streamed answers end: both slots are given back
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fourth).StatusCode);
        Assert.True(await RealTime.UntilAsync(() => limiter.SlotsHeld == 0, TimeSpan.FromSeconds(10)), "a finished answer's slot was not given back");
        var sixth = await SendAsync(key);

        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.StartsWith("key_limit_reached; limit=\"concurrent\"", third.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        Assert.Equal("1", third.Headers.RetryAfter!.ToString());
        Assert.Equal(HttpStatusCode.TooManyRequests, fifth.StatusCode);
        Assert.Equal(HttpStatusCode.OK, sixth.StatusCode);
        Assert.Equal(4, _upstream.Requests.Count); // the two refused ones never arrived
    }

    [Fact]
    public async Task Request_KeyWithoutLimits_NeverCounted()
    {
        var key = await CreateKeyAsync("free", null);

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(key)).StatusCode);
        }

        Assert.Equal(20, _upstream.Requests.Count);
    }

    [Fact]
    public async Task Enter_TokenBudgetUsedUp_RefusedUntilMidnightUtcAndUnderItAllowed()
    {
        var usage = new Usage();
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-01T21:30:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var options = new GatewayOptions();
        using var limiter = new KeyLimiter(new MemoryKeyLimitCounters(time), usage, time, options, NullLogger<KeyLimiter>.Instance);
        var key = new ClientKey { Name = "bot", KeyId = "id1", Credentials = ["sim"], CreatedAt = time.GetUtcNow(), Limits = new ClientKeyLimits(null, 1000, null) };

        usage.Used = 999;
        var under = await limiter.EnterAsync(key, default);
        usage.Used = 1000;
        var cached = await limiter.EnterAsync(key, default); // the day's total is reused for the cache time
        time.Advance(options.CacheTime);
        var over = await limiter.EnterAsync(key, default);
        time.Advance(TimeSpan.FromHours(2.5)); // the next UTC day, on which the key has used nothing yet
        usage.Used = 0;
        var nextDay = await limiter.EnterAsync(key, default);

        Assert.Null(under.Refusal);
        Assert.Null(cached.Refusal);
        Assert.Equal(KeyLimitRefusal.Tokens, over.Refusal!.Limit);
        Assert.Equal(TimeSpan.FromHours(2.5) - options.CacheTime, over.Refusal.RetryAfter);
        Assert.Contains("1000 of 1000 tokens on 2026-03-01", over.Refusal.Message, StringComparison.Ordinal);
        Assert.Contains("latchkey keys set bot --tokens N/day", over.Refusal.Fix, StringComparison.Ordinal);
        Assert.Null(nextDay.Refusal);
        Assert.Equal([new DateOnly(2026, 3, 1), new DateOnly(2026, 3, 1), new DateOnly(2026, 3, 2)], usage.Days);
    }

    [Fact]
    public async Task Enter_RateRefusedAfterASlotWasTaken_TheSlotIsGivenBack()
    {
        var time = new FakeTimeProvider();
        var counters = new MemoryKeyLimitCounters(time);
        using var limiter = new KeyLimiter(counters, new Usage(), time, new GatewayOptions(), NullLogger<KeyLimiter>.Instance);
        var key = new ClientKey { Name = "bot", KeyId = "id1", Credentials = ["sim"], CreatedAt = time.GetUtcNow(), Limits = new ClientKeyLimits(new RateLimit(1, TimeSpan.FromHours(1)), null, 1) };

        var first = await limiter.EnterAsync(key, default);
        await first.Slot!.DisposeAsync();
        var second = await limiter.EnterAsync(key, default);

        Assert.Null(first.Refusal);
        Assert.Equal(KeyLimitRefusal.Rate, second.Refusal!.Limit);
        Assert.Equal(0, limiter.SlotsHeld);
        Assert.True(await counters.TryTakeSlotAsync("id1", 1, "probe", TimeSpan.FromSeconds(30), default));
    }

    [Fact]
    public async Task Request_TokenBudgetSpentByRealAnswers_ChargedTheUpstreamsOwnCountThen429UntilTheDayEnds()
    {
        // A budget the first answer spends: the check before sending sees 0 used, the answer's usage is charged.
        var key = await CreateKeyAsync("budget-bot", new ClientKeyLimits(null, 10, null));

        var first = await SendAsync(key);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var reported = Assert.Single(_upstream.UsageReported);
        var charged = reported.Input + reported.Output + reported.CacheCreation + reported.CacheRead;
        Assert.True(charged >= 10, $"the simulated answer counts {charged} tokens: too few to spend the budget");

        // The charge arrives with the audit writer's next batch; then the limiter's cached total expires.
        var day = DateOnly.FromDateTime(_time.GetUtcNow().UtcDateTime);
        var used = await RealTime.UntilAsync(async () =>
        {
            await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), _time);
            return await ((IUsageLog)store).TokensUsedAsync("budget-bot", day, default);
        }, n => n > 0, TimeSpan.FromSeconds(20));
        Assert.Equal(charged, used);
        _time.Advance(TimeSpan.FromSeconds(2));

        var sent = _upstream.Requests.Count;
        var over = await SendAsync(key);
        var body = await over.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
        Assert.Equal(sent, _upstream.Requests.Count);
        Assert.Contains("key_limit_reached", string.Join(",", over.Headers.GetValues("latchkey-diagnostic")), StringComparison.Ordinal);
        Assert.Contains("limit=\"tokens\"", string.Join(",", over.Headers.GetValues("latchkey-diagnostic")), StringComparison.Ordinal);
        var midnight = new DateTimeOffset(day.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var retryAfter = over.Headers.RetryAfter?.Delta ?? throw new InvalidOperationException("no retry-after");
        Assert.InRange(retryAfter, midnight - _time.GetUtcNow() - TimeSpan.FromSeconds(2), midnight - _time.GetUtcNow() + TimeSpan.FromSeconds(2));
        Assert.Equal("rate_limit_error", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    private async Task<string> CreateKeyAsync(string name, ClientKeyLimits? limits)
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), _time);
        return (await store.CreateKeyAsync(name, ["sim"], null, null, limits, default))!.Value.Value;
    }

    private async Task<HttpResponseMessage> SendAsync(string key, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/sim/v1/messages") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", key);
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        return response;
    }

    /// <summary>The system's clock and timers, with the time it reports moved forward by <see cref="Advance"/>.</summary>
    private sealed class MovableClock : TimeProvider
    {
        private long _offsetTicks;

        public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));
    }

    private sealed class Usage : IKeyTokenUsage
    {
        public long Used { get; set; }

        public List<DateOnly> Days { get; } = [];

        public Task<long> TokensUsedAsync(string clientKey, DateOnly day, CancellationToken cancellationToken)
        {
            Days.Add(day);
            return Task.FromResult(Used);
        }
    }
}
