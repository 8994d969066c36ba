using System.Net;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Tokens;

/// <summary>
/// The token engine's decisions against a scripted token endpoint: every class of token-endpoint answer, merges of
/// partial responses, the refresh-token fence, lost responses, single flight and forced refreshes (each explained in
/// docs/failure-modes.md).
/// Cross-process behaviour is tested with real processes and a real authorization server in Latchkey.Tests.
/// The engine, the store and the token client share a fake clock that stands still (on a whole millisecond, as the
/// store keeps times), so lifetimes and backoffs are asserted exactly.
/// </summary>
public sealed class TokenEngineTests : IAsyncLifetime
{
    private readonly TempHome _home = new();
    private readonly ScriptedTokenEndpoint _endpoint = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    private SqliteCredentialStore _store = null!;
    private TokenEngine _engine = null!;

    public Task InitializeAsync()
    {
        _store = SqliteCredentialStore.Open(_home.Home, _time);
        _engine = NewEngine();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _home.Dispose();
    }

    private TokenEngine NewEngine(TokenEngineOptions? options = null) =>
        new(_store, new TokenEndpointClient(new OAuthHttp(_endpoint), _time), _time, options ?? new TokenEngineOptions { WaitBudget = TimeSpan.FromSeconds(10) });

    /// <summary>An OAuth credential whose access token is due for refresh (or still fresh).</summary>
    private async Task<CredentialRecord> SeedAsync(string name = "mcp", bool expired = true, string refreshToken = "rt-1", string accessToken = "at-1", bool due = false)
    {
        var now = _time.GetUtcNow();
        var metadata = new CredentialMetadata
        {
            Issuer = "http://127.0.0.1:9",
            Client = new ClientRegistration("client-1", "dcr", "none"),
            Resource = "http://127.0.0.1:9/mcp",
            TokenEndpoint = ScriptedTokenEndpoint.Url,
            GrantType = "authorization_code",
            ScopesRequested = ["mcp:tools"],
            ScopesGranted = ["mcp:tools"],
            ObtainedAt = now - TimeSpan.FromHours(1),
            ExpiresAt = expired ? now - TimeSpan.FromSeconds(1) : now + TimeSpan.FromHours(1),
            RefreshAfter = expired || due ? now - TimeSpan.FromMinutes(10) : now + TimeSpan.FromMinutes(45),
        };
        return (await _store.CreateAsync(new NewCredential(name, CredentialKind.OAuth, metadata, new CredentialSecrets { AccessToken = accessToken, RefreshToken = refreshToken }), default)).Record!;
    }

    [Fact]
    public async Task GetAccessToken_FreshToken_ServedWithoutARequest()
    {
        await SeedAsync(expired: false);

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.Ok, result.Status);
        Assert.Equal("at-1", result.AccessToken);
        Assert.Empty(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_Expired_RefreshesOnceWithResourceAndCommitsRotation()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2", scope: "mcp:tools"));

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal("at-2", result.AccessToken);
        var sent = Assert.Single(_endpoint.Requests);
        Assert.Equal("refresh_token", sent["grant_type"]);
        Assert.Equal("rt-1", sent["refresh_token"]);
        Assert.Equal("http://127.0.0.1:9/mcp", sent["resource"]);
        Assert.Equal("client-1", sent["client_id"]);
        var stored = (await _store.GetAsync("mcp", default))!;
        Assert.Equal("rt-2", stored.Secrets.RefreshToken);
        Assert.Equal(RefreshCoordination.None with { Lease = RefreshLease.None with { Epoch = stored.Coordination.Lease.Epoch } }, stored.Coordination);
        var lifetime = stored.Metadata.ExpiresAt!.Value - stored.Metadata.ObtainedAt!.Value;
        var refreshAt = (stored.Metadata.RefreshAfter!.Value - stored.Metadata.ObtainedAt!.Value) / lifetime;
        Assert.InRange(refreshAt, 0.75, 0.85);
    }

    [Fact]
    public async Task GetAccessToken_ResponseWithoutRefreshToken_KeepsTheOldOne()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.OK, """{"access_token":"at-2","token_type":"bearer"}""");

        await _engine.GetAccessTokenAsync("mcp", null, default);

        var stored = (await _store.GetAsync("mcp", default))!;
        Assert.Equal("at-2", stored.Secrets.AccessToken);
        Assert.Equal("rt-1", stored.Secrets.RefreshToken);
        Assert.Equal(["mcp:tools"], stored.Metadata.ScopesGranted);
        Assert.Equal(TimeSpan.FromHours(1), stored.Metadata.ExpiresAt!.Value - stored.Metadata.ObtainedAt!.Value); // the default lifetime
    }

    [Fact]
    public async Task GetAccessToken_ResponseWithoutExpiresIn_LifetimeFromJwtExp()
    {
        await SeedAsync();
        var exp = _time.GetUtcNow().AddMinutes(10).ToUnixTimeSeconds();
        var payload = Pkce.Base64Url(System.Text.Encoding.UTF8.GetBytes($$"""{"exp":{{exp}}}"""));
        _endpoint.Then(HttpStatusCode.OK, $$"""{"access_token":"eyJhbGciOiJub25lIn0.{{payload}}.sig","token_type":"Bearer","refresh_token":"rt-2"}""");

        await _engine.GetAccessTokenAsync("mcp", null, default);

        var stored = (await _store.GetAsync("mcp", default))!;
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(exp), stored.Metadata.ExpiresAt!.Value);
    }

    [Fact]
    public async Task GetAccessToken_InvalidGrant_NeedsAuthWithServerReasonAndSecretsKept()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.BadRequest, """{"error":"invalid_grant","error_description":"grant request is invalid"}""", r => r.Headers.Add("x-request-id", "req-42"));

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.NeedsAuth, result.Status);
        Assert.Equal("invalid_grant", result.Reason!.Code);
        Assert.Contains("grant request is invalid", result.Reason.Message, StringComparison.Ordinal);
        Assert.Contains("req-42", result.Reason.Message, StringComparison.Ordinal);
        Assert.Equal("latchkey login mcp", result.Reason.Fix);
        var stored = (await _store.GetAsync("mcp", default))!;
        Assert.Equal(CredentialState.NeedsAuth, stored.State);
        Assert.Equal("rt-1", stored.Secrets.RefreshToken);
        Assert.Null(stored.Coordination.Attempt);
        Assert.Null(stored.Coordination.Lease.Owner);
    }

    [Theory]
    [InlineData("invalid_client", "client_rejected")]
    [InlineData("unauthorized_client", "client_rejected")]
    [InlineData("invalid_scope", "invalid_scope")]
    [InlineData("invalid_target", "invalid_target")]
    public async Task GetAccessToken_Rejections_NeedsAuthNamingTheCause(string error, string reason)
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.BadRequest, $$"""{"error":"{{error}}"}""");

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.NeedsAuth, result.Status);
        Assert.Equal(reason, result.Reason!.Code);
    }

    [Theory]
    [InlineData(HttpStatusCode.ServiceUnavailable, "{}")]
    [InlineData(HttpStatusCode.InternalServerError, "{}")]
    [InlineData(HttpStatusCode.BadRequest, """{"error":"temporarily_unavailable"}""")]
    [InlineData(HttpStatusCode.OK, """{"error":"server_error"}""")]
    public async Task GetAccessToken_TransientFailure_CredentialKeptAndSharedBackoffRecorded(HttpStatusCode status, string body)
    {
        await SeedAsync();
        _endpoint.Then(status, body);

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);
        var again = await NewEngine().GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.Retryable, result.Status);
        Assert.Equal(TokenStatus.Retryable, again.Status); // another engine (process) honours the backoff: no second POST
        Assert.Single(_endpoint.Requests);
        var stored = (await _store.GetAsync("mcp", default))!;
        Assert.Equal(CredentialState.Ok, stored.State);
        Assert.Equal("rt-1", stored.Secrets.RefreshToken);
        Assert.Equal(1, stored.Coordination.Failures);
        Assert.True(stored.Coordination.BackoffUntil > _time.GetUtcNow());
        Assert.Null(stored.Coordination.Attempt);
    }

    [Fact]
    public async Task GetAccessToken_TransientFailureWhileAccessTokenStillUsable_ServesTheStoredToken()
    {
        var now = _time.GetUtcNow();
        await SeedAsync(expired: false);
        await _store.UpdateAsync("mcp", new CredentialPatch { Metadata = m => m with { RefreshAfter = now - TimeSpan.FromMinutes(1) } }, WriteCondition.None, default);
        _endpoint.Then(HttpStatusCode.ServiceUnavailable, "{}");

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.Ok, result.Status);
        Assert.Equal("at-1", result.AccessToken);
    }

    [Fact]
    public async Task GetAccessToken_TooManyRequests_BackoffFollowsRetryAfter()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.TooManyRequests, "{}", r => r.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(120)));

        await _engine.GetAccessTokenAsync("mcp", null, default);

        var backoff = (await _store.GetAsync("mcp", default))!.Coordination.BackoffUntil!.Value - _time.GetUtcNow();
        Assert.Equal(TimeSpan.FromSeconds(120), backoff);
    }

    [Fact]
    public async Task GetAccessToken_UnknownErrorThreeTimes_ThenNeedsAuthUnexpectedResponse()
    {
        await SeedAsync();
        _endpoint.Default = _ => Task.FromResult(ScriptedTokenEndpoint.Json(HttpStatusCode.BadRequest, """{"error":"weird_thing"}"""));
        TokenResult? result = null;
        for (var i = 0; i < 3; i++)
        {
            await _store.UpdateAsync("mcp", new CredentialPatch(), WriteCondition.None, default);
            await ClearBackoffAsync("mcp");
            result = await _engine.GetAccessTokenAsync("mcp", null, default);
        }

        Assert.Equal(TokenStatus.NeedsAuth, result!.Status);
        Assert.Equal("unexpected_response", result.Reason!.Code);
    }

    [Fact]
    public async Task GetAccessToken_LostResponseThenRetrySucceeds_CommitsTheRetrysTokens()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.BadGateway, "{}");
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal("at-2", result.AccessToken);
        Assert.Equal(["rt-1", "rt-1"], _endpoint.Requests.Select(r => r["refresh_token"]));
        Assert.Equal("rt-2", (await _store.GetAsync("mcp", default))!.Secrets.RefreshToken);
    }

    [Fact]
    public async Task GetAccessToken_LostResponseThenRetryRefused_NeedsAuthLostResponseRotation()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.GatewayTimeout, "{}");
        _endpoint.Then(HttpStatusCode.BadRequest, """{"error":"invalid_grant"}""");

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.NeedsAuth, result.Status);
        Assert.Equal("lost_response_rotation", result.Reason!.Code);
        Assert.Equal(2, _endpoint.Requests.Count);
    }

    [Fact]
    public async Task GetAccessToken_MarkerLeftByDeadProcess_OneRecoveryPostWithTheSameToken()
    {
        await SeedAsync();
        // A refresher on this host died after sending: its lease and attempt marker are left behind.
        var dead = $"{Environment.MachineName}/{File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim()}/999999/1/dead";
        Assert.True(await _store.TryAcquireLeaseAsync("mcp", dead, null, 0, TimeSpan.FromMinutes(5), default));
        var row = (await _store.GetAsync("mcp", default))!;
        Assert.True(await _store.MarkAttemptAsync("mcp", dead, "attempt-1", row.RefreshTokenFingerprint, null, default));
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal("at-2", result.AccessToken);
        Assert.Equal("rt-1", Assert.Single(_endpoint.Requests)["refresh_token"]);
    }

    [Fact]
    public async Task GetAccessToken_LoserInvalidGrantAfterWinnerCommitted_WinnerKept()
    {
        await SeedAsync();
        // While our request is in flight, another process rotates the grant (rt-1 -> rt-2) and commits; the server
        // then tells us rt-1 is spent.
        _endpoint.Then(async _ =>
        {
            var row = (await _store.GetAsync("mcp", default))!;
            await _store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-winner", RefreshToken = "rt-2", Metadata = m => m with { ExpiresAt = _time.GetUtcNow().AddHours(1), ObtainedAt = _time.GetUtcNow(), RefreshAfter = _time.GetUtcNow().AddMinutes(45) } }, WriteCondition.RefreshToken(row.RefreshTokenFingerprint), default);
            return ScriptedTokenEndpoint.Json(HttpStatusCode.BadRequest, """{"error":"invalid_grant"}""");
        });

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.Ok, result.Status);
        Assert.Equal("at-winner", result.AccessToken);
        var stored = (await _store.GetAsync("mcp", default))!;
        Assert.Equal(CredentialState.Ok, stored.State);
        Assert.Equal("rt-2", stored.Secrets.RefreshToken);
    }

    [Fact]
    public async Task GetAccessToken_ManyConcurrentCallersInOneProcess_OnePost()
    {
        await SeedAsync();
        var release = new TaskCompletionSource();
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _endpoint.Then(async _ =>
        {
            sent.TrySetResult();
            await release.Task;
            return ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));
        });

        var joined = 0;
        var allJoined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callers = Enumerable.Range(0, 32).Select(_ => Task.Run(() =>
        {
            var call = _engine.GetAccessTokenAsync("mcp", null, default); // joins the flight before it returns
            if (Interlocked.Increment(ref joined) == 32)
            {
                allJoined.TrySetResult();
            }

            return call;
        })).ToList();
        await Task.WhenAll(sent.Task, allJoined.Task).WaitAsync(TimeSpan.FromSeconds(30)); // all 32 asked while the one request is held
        release.SetResult();
        var results = await Task.WhenAll(callers);

        Assert.All(results, r => Assert.Equal("at-2", r.AccessToken));
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_FirstCallerCancels_OthersStillGetTheToken()
    {
        await SeedAsync();
        var release = new TaskCompletionSource();
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _endpoint.Then(async _ =>
        {
            sent.TrySetResult();
            await release.Task;
            return ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));
        });
        using var first = new CancellationTokenSource();

        var firstCall = _engine.GetAccessTokenAsync("mcp", null, first.Token);
        await sent.Task.WaitAsync(TimeSpan.FromSeconds(30)); // the first caller's flight is at the server
        var secondCall = _engine.GetAccessTokenAsync("mcp", null, default);
        await first.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => firstCall);
        release.SetResult();

        Assert.Equal("at-2", (await secondCall).AccessToken);
        Assert.Single(_endpoint.Requests);
        Assert.Equal("rt-2", (await _store.GetAsync("mcp", default))!.Secrets.RefreshToken);
    }

    [Fact]
    public async Task GetAccessToken_LateArrivalAfterRefresh_AdoptsWinnerWithoutSecondPost()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));

        await _engine.GetAccessTokenAsync("mcp", null, default);
        var late = await NewEngine().GetAccessTokenAsync("mcp", null, default);

        Assert.Equal("at-2", late.AccessToken);
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_ForcedRefreshForTheStoredToken_RefreshesOnceEvenIfFresh()
    {
        await SeedAsync(expired: false);
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));
        var refused = _engine.Fingerprint("at-1");

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _engine.GetAccessTokenAsync("mcp", refused, default)));

        Assert.All(results, r => Assert.Equal("at-2", r.AccessToken));
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_ForcedRefreshForASupersededToken_NoRefresh()
    {
        await SeedAsync(expired: false, accessToken: "at-current");

        var result = await _engine.GetAccessTokenAsync("mcp", _engine.Fingerprint("at-old"), default);

        Assert.Equal("at-current", result.AccessToken);
        Assert.Empty(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_ForcedRefreshForASupersededTokenWhoseReplacementIsDue_RefreshesInsteadOfHandingItBack()
    {
        await SeedAsync(expired: false, accessToken: "at-current", due: true); // still usable, past its refresh-ahead point
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));

        var result = await _engine.GetAccessTokenAsync("mcp", _engine.Fingerprint("at-old"), default);

        Assert.Equal("at-2", result.AccessToken);
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_NetworkUnreachable_NotSentTransientAndCredentialKept()
    {
        await SeedAsync();
        _endpoint.Then(_ => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused"));

        var result = await _engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal(TokenStatus.Retryable, result.Status);
        Assert.Equal("network_error", result.Reason!.Code);
        Assert.Equal(CredentialState.Ok, (await _store.GetAsync("mcp", default))!.State);
    }

    [Fact]
    public async Task GetAccessToken_ApiKey_ServedWithoutEngineState()
    {
        await _store.CreateAsync(new NewCredential("key", CredentialKind.ApiKey, new CredentialMetadata { Upstream = "https://api.example.com" }, new CredentialSecrets { ApiKey = "sk-1" }), default);

        var result = await _engine.GetAccessTokenAsync("key", null, default);

        Assert.Equal("sk-1", result.AccessToken);
        Assert.Empty(_endpoint.Requests);
    }

    [Fact]
    public async Task GetAccessToken_UnknownName_NotFound()
    {
        Assert.Equal(TokenStatus.NotFound, (await _engine.GetAccessTokenAsync("nobody", null, default)).Status);
    }

    private async Task ClearBackoffAsync(string name)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_home.Home.DatabasePath};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE credential SET backoff_until = NULL WHERE name = $n";
        command.Parameters.AddWithValue("$n", name);
        await command.ExecuteNonQueryAsync();
    }
}
