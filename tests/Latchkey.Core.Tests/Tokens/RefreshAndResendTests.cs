using System.Collections.Concurrent;
using System.Net;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.Time.Testing;

namespace Latchkey.Tests.Tokens;

/// <summary>
/// The one refused → forced refresh → resend policy, over the real token engine and store: which token is resent,
/// when the engine is asked to refresh, how many resends each caller's count allows, and what is reported when the
/// engine declines, fails, or hands back the refused token. Time is a <see cref="FakeTimeProvider"/> (a token that
/// expires in flight is one whose send moves the clock); the token endpoint is scripted and counts refreshes; the
/// upstream is a fake that records every token it was sent.
/// </summary>
public sealed class RefreshAndResendTests : IAsyncLifetime
{
    private readonly TempHome _home = new();
    private readonly ScriptedTokenEndpoint _endpoint = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private SqliteCredentialStore _store = null!;
    private TokenEngine _engine = null!;
    private int _issued;
    private int _lifetime = 3600;

    public Task InitializeAsync()
    {
        _store = SqliteCredentialStore.Open(_home.Home, _time);
        _engine = new TokenEngine(_store, new TokenEndpointClient(new OAuthHttp(_endpoint), _time), _time, new TokenEngineOptions { WaitBudget = TimeSpan.FromSeconds(10) });
        // Every refresh succeeds with new tokens (at-2, at-3, ...) living _lifetime seconds, as a real server does.
        _endpoint.Default = _ =>
        {
            var n = Interlocked.Increment(ref _issued);
            return Task.FromResult(ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens($"at-{n + 1}", $"rt-{n + 1}", _lifetime)));
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        _home.Dispose();
    }

    [Fact]
    public async Task SendAsync_FirstAnswerAccepted_SentOnceWithTheStoredTokenAndNothingRefreshed()
    {
        await SeedAsync();
        var upstream = new FakeUpstream(_ => true);

        var sent = await SendAsync(upstream, maxResends: 1);

        Assert.Equal((ResendEnd.Answered, 0), (sent.End, sent.Resends));
        Assert.Equal(["at-1"], upstream.Seen);
        Assert.Null(sent.Token);
        Assert.Empty(_endpoint.Requests);
    }

    [Fact]
    public async Task SendAsync_StoredTokenRefused_ForcedRefreshAndTheResendCarriesTheReplacement()
    {
        await SeedAsync();
        var upstream = new FakeUpstream(token => token.AccessToken != "at-1");

        var sent = await SendAsync(upstream, maxResends: 1);

        Assert.Equal((ResendEnd.Answered, 1), (sent.End, sent.Resends));
        Assert.Equal(["at-1", "at-2"], upstream.Seen);
        Assert.Equal("at-2", sent.Credential!.AccessToken);
        Assert.Equal(["at-1"], upstream.Discarded); // the refused answer was let go of before the resend
        Assert.Single(_endpoint.Requests);
        Assert.Equal(_time.GetUtcNow(), (await _store.GetAsync("mcp", default))!.Metadata.LastForcedRefreshAt);
    }

    [Fact]
    public async Task SendAsync_ReplacementRefusedToo_RefusedAfterTheLastResendAndNotRefreshedAgain()
    {
        await SeedAsync();
        var upstream = new FakeUpstream(_ => false);

        var sent = await SendAsync(upstream, maxResends: 1);

        Assert.Equal((ResendEnd.Refused, 1), (sent.End, sent.Resends));
        Assert.Equal(["at-1", "at-2"], upstream.Seen);
        Assert.Equal("at-2", sent.Credential!.AccessToken);
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task SendAsync_TokenOfARecentForcedRefreshRefused_RefreshSkippedNotResentAndTheEnginesReasonReported()
    {
        await SeedAsync();
        await SendAsync(new FakeUpstream(token => token.AccessToken != "at-1"), maxResends: 2); // a forced refresh made at-2
        _time.Advance(TimeSpan.FromSeconds(5));
        var upstream = new FakeUpstream(_ => false);

        var sent = await SendAsync(upstream, maxResends: 2);

        Assert.Equal((ResendEnd.RefreshSkipped, 0), (sent.End, sent.Resends));
        Assert.Equal(["at-2"], upstream.Seen); // the bridge's two resends do not override the engine's bound
        Assert.Equal(TokenEngine.RefreshSkipped, sent.Token!.Reason!.Code);
        Assert.Contains("did not refresh 'mcp' again", sent.Token.Reason.Message, StringComparison.Ordinal);
        Assert.Single(_endpoint.Requests);
    }

    [Theory]
    [InlineData(1, false, new[] { "at-1", "at-2" })] // the gateway's count: refused after its one resend
    [InlineData(2, true, new[] { "at-1", "at-2", "at-3" })] // the stdio bridge's count: answered
    public async Task SendAsync_ReplacementExpiresInFlight_ASecondResendCarriesAThirdToken(int maxResends, bool answered, string[] seen)
    {
        await SeedAsync();
        _lifetime = 2; // an MCP server's 2-second tokens
        // The first token is refused (revoked); its replacement is handed out usable, but the machine stalls for 2.5 s
        // while it is in flight, so it arrives dead and is refused too.
        var upstream = new FakeUpstream(token => token.AccessToken != "at-1" && token.ExpiresAt > _time.GetUtcNow())
        {
            WhileSending = token =>
            {
                if (token.AccessToken == "at-2")
                {
                    _time.Advance(TimeSpan.FromSeconds(2.5));
                }
            },
        };

        var sent = await SendAsync(upstream, maxResends);

        Assert.Equal(answered ? ResendEnd.Answered : ResendEnd.Refused, sent.End);
        Assert.Equal(seen, upstream.Seen);
        Assert.Equal(seen.Length - 1, _endpoint.Requests.Count); // a dead replacement is refreshed as a due token, not skipped
    }

    [Fact]
    public async Task SendAsync_RefreshRefusedByTheServer_RefreshFailedWithTheEnginesAnswerAndNotResent()
    {
        await SeedAsync();
        _endpoint.Then(HttpStatusCode.BadRequest, """{"error":"invalid_grant","error_description":"revoked"}""");
        var upstream = new FakeUpstream(_ => false);

        var sent = await SendAsync(upstream, maxResends: 2);

        Assert.Equal(ResendEnd.RefreshFailed, sent.End);
        Assert.Equal(TokenStatus.NeedsAuth, sent.Token!.Status);
        Assert.Equal(["at-1"], upstream.Seen);
        Assert.Empty(upstream.Discarded); // the refused answer is the caller's, to pass on
        Assert.Equal("at-1", sent.Response.Token);
    }

    [Fact]
    public async Task SendAsync_RequestThatCannotBeResent_RefreshedForTheNextRequestButNotResent()
    {
        await SeedAsync();
        var upstream = new FakeUpstream(_ => false);

        var sent = await SendAsync(upstream, maxResends: 1, canResend: false);

        Assert.Equal(ResendEnd.NotResent, sent.End);
        Assert.Equal("at-2", sent.Token!.AccessToken);
        Assert.Equal(["at-1"], upstream.Seen);
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task SendAsync_EngineHandsBackTheRefusedToken_NotReplacedAndNotResent()
    {
        await SeedAsync(refreshToken: null); // nothing to refresh with: the engine can only hand back the same token
        var upstream = new FakeUpstream(_ => false);

        var sent = await SendAsync(upstream, maxResends: 2);

        Assert.Equal(ResendEnd.NotReplaced, sent.End);
        Assert.Equal(["at-1"], upstream.Seen);
        Assert.Empty(_endpoint.Requests);
    }

    [Fact]
    public async Task SendAsync_NoSuchCredential_NoTokenAndNothingSent()
    {
        var upstream = new FakeUpstream(_ => true);

        var sent = await SendAsync(upstream, maxResends: 1);

        Assert.Equal(ResendEnd.NoToken, sent.End);
        Assert.Equal(TokenStatus.NotFound, sent.Token!.Status);
        Assert.Empty(upstream.Seen);
    }

    [Fact]
    public async Task SendAsync_RefusedTokenAlreadyReplacedElsewhere_ResentWithTheStoredOneWithoutARefresh()
    {
        await SeedAsync();
        var upstream = new FakeUpstream(token => token.AccessToken != "at-0");
        var tokens = RefreshAndResend.Tokens(_engine);
        var held = TokenResult.Ok("at-0", null); // a token this process held before another one stored at-1

        var sent = await RefreshAndResend.SendAsync<TokenResult, Answer, FakeRequest>(tokens, "mcp", held, "at-0", new(upstream, true), 1, default);

        Assert.Equal((ResendEnd.Answered, 1), (sent.End, sent.Resends));
        Assert.Equal(["at-0", "at-1"], upstream.Seen);
        Assert.Empty(_endpoint.Requests); // the refusal named a token that is no longer stored: nothing to refresh
    }

    [Fact]
    public async Task SendAsync_EightRequestsRefusedAtOnce_OneRefreshAndEveryResendCarriesTheReplacement()
    {
        await SeedAsync();
        var upstreams = Enumerable.Range(0, 8).Select(_ => new FakeUpstream(token => token.AccessToken != "at-1")).ToList();

        var sent = await Task.WhenAll(upstreams.Select(u => SendAsync(u, maxResends: 1).AsTask()));

        Assert.All(sent, s => Assert.Equal((ResendEnd.Answered, "at-2"), (s.End, s.Credential!.AccessToken)));
        Assert.Single(_endpoint.Requests);
    }

    [Fact]
    public async Task SendAsync_FirstAnswerAcceptedWithATokenInHand_AllocatesNothing()
    {
        var tokens = RefreshAndResend.Tokens(_engine);
        var held = TokenResult.Ok("at-1", null);
        var request = new AcceptingRequest(new Answer("at-1", false));
        for (var i = 0; i < 10; i++)
        {
            await RefreshAndResend.SendAsync<TokenResult, Answer, AcceptingRequest>(tokens, "mcp", held, "at-1", request, 1, default); // warm up
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            await RefreshAndResend.SendAsync<TokenResult, Answer, AcceptingRequest>(tokens, "mcp", held, "at-1", request, 1, default);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private ValueTask<ResendOutcome<TokenResult, Answer>> SendAsync(FakeUpstream upstream, int maxResends, bool canResend = true) =>
        RefreshAndResend.SendAsync<TokenResult, Answer, FakeRequest>(RefreshAndResend.Tokens(_engine), "mcp", new(upstream, canResend), maxResends, default);

    private Task<WriteResult> SeedAsync(string? refreshToken = "rt-1") => _store.CreateAsync(ScriptedTokenEndpoint.Grant("mcp", _time.GetUtcNow(), refreshToken), default);

    /// <summary>What the fake upstream answered: the token it was sent, and whether it refused it.</summary>
    internal sealed record Answer(string Token, bool Refused);

    /// <summary>An upstream that accepts the tokens <paramref name="accepts"/> says, recording each one it was sent.</summary>
    private sealed class FakeUpstream(Func<TokenResult, bool> accepts)
    {
        public ConcurrentQueue<string> Seen { get; } = new();

        public ConcurrentQueue<string> Discarded { get; } = new();

        /// <summary>Runs while a token is in flight (after it left, before the upstream checks it).</summary>
        public Action<TokenResult>? WhileSending { get; init; }

        public Answer Receive(TokenResult token)
        {
            Seen.Enqueue(token.AccessToken!);
            WhileSending?.Invoke(token);
            return new Answer(token.AccessToken!, !accepts(token));
        }
    }

    private readonly struct FakeRequest(FakeUpstream upstream, bool canResend) : ITokenRequest<TokenResult, Answer>
    {
        public bool CanResend => canResend;

        public ValueTask<Answer> SendAsync(TokenResult credential, CancellationToken ct) => ValueTask.FromResult(upstream.Receive(credential));

        public bool IsRefused(Answer response) => response.Refused;

        public void Discard(Answer response) => upstream.Discarded.Enqueue(response.Token);
    }

    /// <summary>A request whose answer is always the same accepted one, so the test measures the policy alone.</summary>
    private readonly struct AcceptingRequest(Answer answer) : ITokenRequest<TokenResult, Answer>
    {
        public bool CanResend => true;

        public ValueTask<Answer> SendAsync(TokenResult credential, CancellationToken ct) => ValueTask.FromResult(answer);

        public bool IsRefused(Answer response) => response.Refused;

        public void Discard(Answer response)
        {
        }
    }
}
