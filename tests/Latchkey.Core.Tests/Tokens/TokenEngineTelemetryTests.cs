using System.Net;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tests.Telemetry;
using Latchkey.Tokens;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Tokens;

/// <summary>What the token engine records: each refresh by outcome, and callers that waited for a flight already
/// under way, against the scripted token endpoint on a fake clock.</summary>
public sealed class TokenEngineTelemetryTests : IAsyncLifetime
{
    private readonly TempHome _home = new();
    private readonly ScriptedTokenEndpoint _endpoint = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    private SqliteCredentialStore _store = null!;
    private TokenEngine _engine = null!;

    public Task InitializeAsync()
    {
        _store = SqliteCredentialStore.Open(_home.Home, _time);
        _engine = new TokenEngine(_store, new TokenEndpointClient(new OAuthHttp(_endpoint), _time), _time, new TokenEngineOptions { WaitBudget = TimeSpan.FromSeconds(10) });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _home.Dispose();
    }

    [Fact]
    public async Task Refresh_SuccessThenInvalidGrant_CountedOnceEachByOutcome()
    {
        using var capture = new MetricCapture("latchkey.token_engine.refreshes");
        await _store.CreateAsync(ScriptedTokenEndpoint.Grant("ok", _time.GetUtcNow(), due: true), default);
        await _store.CreateAsync(ScriptedTokenEndpoint.Grant("revoked", _time.GetUtcNow(), due: true), default);
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));
        _endpoint.Then(HttpStatusCode.BadRequest, """{"error":"invalid_grant"}""");

        var ok = await _engine.GetAccessTokenAsync("ok", null, default);
        var revoked = await _engine.GetAccessTokenAsync("revoked", null, default);

        Assert.Equal(TokenStatus.Ok, ok.Status);
        Assert.Equal(TokenStatus.NeedsAuth, revoked.Status);
        Assert.Equal(1, capture.Sum("latchkey.token_engine.refreshes", ("outcome", "success")));
        Assert.Equal(1, capture.Sum("latchkey.token_engine.refreshes", ("outcome", "rejected")));
        Assert.Equal(2, capture.Measurements.Count);
    }

    [Fact]
    public async Task GetAccessToken_CallersWhileARefreshIsUnderWay_EachJoinCountedAsAFlightWait()
    {
        using var capture = new MetricCapture("latchkey.token_engine.waits", "latchkey.token_engine.refreshes");
        await _store.CreateAsync(ScriptedTokenEndpoint.Grant("shared", _time.GetUtcNow(), due: true), default);
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var answer = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        _endpoint.Then(_ =>
        {
            sent.SetResult();
            return answer.Task;
        });

        var first = _engine.GetAccessTokenAsync("shared", null, default);
        await sent.Task.WaitAsync(TimeSpan.FromSeconds(30)); // the refresh is in flight, waiting for its answer
        var joined = Enumerable.Range(0, 4).Select(_ => _engine.GetAccessTokenAsync("shared", null, default)).ToList();
        answer.SetResult(ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2")));
        await Task.WhenAll([first, .. joined]);

        Assert.Single(_endpoint.Requests);
        Assert.Equal(4, capture.Sum("latchkey.token_engine.waits", ("wait", "flight")));
        Assert.Equal(1, capture.Sum("latchkey.token_engine.refreshes", ("outcome", "success")));
    }
}
