using System.Net;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Tokens;

/// <summary>
/// Forced refreshes (after an upstream refused a still-fresh token) are bounded per grant: the token a forced refresh
/// produced is not refreshed again while it is younger than <see cref="TokenEngineOptions.ForcedRefreshInterval"/>,
/// so an endpoint that refuses every token cannot make Latchkey hammer the authorization server. Time is a fake
/// clock the tests move; the token endpoint is scripted and counts what it is asked.
/// </summary>
public sealed class ForcedRefreshBoundTests : IAsyncLifetime
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(60);

    private readonly TempHome _home = new();
    private readonly ScriptedTokenEndpoint _endpoint = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private SqliteCredentialStore _store = null!;
    private int _issued;

    public Task InitializeAsync()
    {
        _store = SqliteCredentialStore.Open(_home.Home, TimeProvider.System);
        // Every refresh succeeds with a new one-hour token, as a real server does.
        _endpoint.Default = _ =>
        {
            var n = Interlocked.Increment(ref _issued);
            return Task.FromResult(ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens($"at-{n + 1}", $"rt-{n + 1}")));
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _home.Dispose();
    }

    [Fact]
    public async Task GetAccessToken_FirstRefusalOfAFreshToken_RefreshesOnce()
    {
        await SeedAsync();
        var engine = NewEngine();

        var result = await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-1"), default);

        Assert.Equal(("at-2", null), (result.AccessToken, result.Reason?.Code));
        Assert.Single(_endpoint.Requests);
        Assert.Equal(_time.GetUtcNow(), (await _store.GetAsync("mcp", default))!.Metadata.LastForcedRefreshAt);
    }

    [Fact]
    public async Task GetAccessToken_TokenOfAForcedRefreshRefusedWithinTheInterval_NotRefreshedAndSaysWhy()
    {
        await SeedAsync();
        var engine = NewEngine();
        await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-1"), default);
        _time.Advance(TimeSpan.FromSeconds(5));

        var result = await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-2"), default);

        Assert.Equal(TokenStatus.Ok, result.Status);
        Assert.Equal("at-2", result.AccessToken); // still usable for other requests: the credential is not broken
        Assert.Equal(TokenEngine.RefreshSkipped, result.Reason!.Code);
        Assert.Contains("did not refresh 'mcp' again", result.Reason.Message, StringComparison.Ordinal);
        Assert.Contains("60 s", result.Reason.Message, StringComparison.Ordinal);
        Assert.Contains("latchkey login mcp", result.Reason.Fix, StringComparison.Ordinal);
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_TokenOfAForcedRefreshRefusedAfterTheInterval_RefreshedAgain()
    {
        await SeedAsync();
        var engine = NewEngine();
        await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-1"), default);
        _time.Advance(Interval + TimeSpan.FromSeconds(1));

        var result = await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-2"), default);

        Assert.Equal(("at-3", null), (result.AccessToken, result.Reason?.Code));
        Assert.Equal(2, _endpoint.Requests.Count);
    }

    [Fact]
    public async Task GetAccessToken_EveryTokenRefusedFor200Seconds_OneForcedRefreshPerInterval()
    {
        await SeedAsync();
        var engine = NewEngine();
        var skipped = 0;
        for (var second = 0; second < 200; second++)
        {
            // An endpoint that refuses every token: each second the caller reports the token it was just given.
            var current = (await engine.GetAccessTokenAsync("mcp", null, default)).AccessToken!;
            var result = await engine.GetAccessTokenAsync("mcp", engine.Fingerprint(current), default);
            skipped += result.Reason?.Code == TokenEngine.RefreshSkipped ? 1 : 0;
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        // Refreshes at 0, 60, 120 and 180 s; every other refusal was answered without one.
        Assert.Equal(4, _endpoint.Requests.Count);
        Assert.Equal(196, skipped);
    }

    [Fact]
    public async Task GetAccessToken_AnotherProcessRefusedTheTokenOfAForcedRefresh_BoundAppliesToItToo()
    {
        await SeedAsync();
        var first = NewEngine();
        await first.GetAccessTokenAsync("mcp", first.Fingerprint("at-1"), default);
        _time.Advance(TimeSpan.FromSeconds(2));
        var second = NewEngine(); // another process: its own flights and owner id; only the store is shared

        var result = await second.GetAccessTokenAsync("mcp", second.Fingerprint("at-2"), default);

        Assert.Equal(TokenEngine.RefreshSkipped, result.Reason?.Code);
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_TokenOfAScheduledRefreshRefused_RefreshedEvenRightAfterAForcedOne()
    {
        await SeedAsync(due: true);
        var engine = NewEngine();
        await engine.GetAccessTokenAsync("mcp", null, default); // due: a scheduled refresh, at-2
        _time.Advance(TimeSpan.FromSeconds(1));

        var result = await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-2"), default);

        Assert.Equal(("at-3", null), (result.AccessToken, result.Reason?.Code));
        Assert.Equal(2, _endpoint.Requests.Count);
        Assert.Equal(_time.GetUtcNow(), (await _store.GetAsync("mcp", default))!.Metadata.LastForcedRefreshAt); // this one was forced
    }

    [Fact]
    public async Task GetAccessToken_TokenOfAForcedRefreshExpiredInFlight_RefreshedAsADueToken()
    {
        await SeedAsync();
        var engine = NewEngine();
        await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-1"), default);
        _time.Advance(TimeSpan.FromMinutes(59) + TimeSpan.FromSeconds(50)); // past its refresh-ahead point

        var result = await engine.GetAccessTokenAsync("mcp", engine.Fingerprint("at-2"), default);

        Assert.Equal(("at-3", null), (result.AccessToken, result.Reason?.Code));
    }

    private TokenEngine NewEngine() =>
        new(_store, new TokenEndpointClient(new OAuthHttp(_endpoint), _time), _time, new TokenEngineOptions { WaitBudget = TimeSpan.FromSeconds(10), ForcedRefreshInterval = Interval });

    private Task<WriteResult> SeedAsync(bool due = false) => _store.CreateAsync(ScriptedTokenEndpoint.Grant("mcp", _time.GetUtcNow(), due: due), default);
}
