using System.Net;
using System.Security.Cryptography;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;

namespace Latchkey.Tests.Tokens;

/// <summary>
/// The token engine on the PostgreSQL backend: replicas (each its own store instance, pool and engine) sharing
/// one database refresh a grant once, and a lease left by a replica that vanished runs out on the database's clock.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class TokenEnginePostgresTests(PostgresServer server) : IAsyncLifetime
{
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private readonly ScriptedTokenEndpoint _endpoint = new();
    private readonly List<PostgresCredentialStore> _stores = [];
    private string _url = string.Empty;

    public async Task InitializeAsync() => _url = await server.CreateDatabaseAsync();

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }

    private (PostgresCredentialStore Store, TokenEngine Engine) Replica()
    {
        var store = PostgresCredentialStore.Open(PostgresLocation.Parse(_url), new SecretProtector(Key), TimeProvider.System);
        _stores.Add(store);
        var engine = new TokenEngine(store, new TokenEndpointClient(new OAuthHttp(_endpoint), TimeProvider.System), TimeProvider.System,
            new TokenEngineOptions { WaitBudget = TimeSpan.FromSeconds(20) });
        return (store, engine);
    }

    private static NewCredential Expired()
    {
        var now = DateTimeOffset.UtcNow;
        return new NewCredential("mcp", CredentialKind.OAuth, new CredentialMetadata
        {
            Issuer = "http://127.0.0.1:9",
            Client = new ClientRegistration("client-1", "dcr", "none"),
            Resource = "http://127.0.0.1:9/mcp",
            TokenEndpoint = ScriptedTokenEndpoint.Url,
            GrantType = "authorization_code",
            ObtainedAt = now - TimeSpan.FromHours(1),
            ExpiresAt = now - TimeSpan.FromSeconds(1),
            RefreshAfter = now - TimeSpan.FromMinutes(10),
        }, new CredentialSecrets { AccessToken = "at-1", RefreshToken = "rt-1" });
    }

    [Fact]
    public async Task GetAccessToken_ThreeReplicasManyCallers_OnePostAndEveryoneGetsTheNewToken()
    {
        var replicas = Enumerable.Range(0, 3).Select(_ => Replica()).ToList();
        await replicas[0].Store.CreateAsync(Expired(), default);
        var release = new TaskCompletionSource();
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _endpoint.Then(async _ =>
        {
            sent.TrySetResult();
            await release.Task;
            return ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));
        });
        _endpoint.Default = _ => Task.FromResult(ScriptedTokenEndpoint.Json(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-second-refresh", "rt-3")));

        var callers = replicas.SelectMany(r => Enumerable.Range(0, 8).Select(_ => Task.Run(() => r.Engine.GetAccessTokenAsync("mcp", null, default)))).ToList();
        await sent.Task.WaitAsync(TimeSpan.FromSeconds(30)); // one replica's refresh is at the server; the rest wait for it

        release.SetResult();
        var results = await Task.WhenAll(callers);

        Assert.All(results, r => Assert.Equal("at-2", r.AccessToken));
        Assert.Equal("rt-1", Assert.Single(_endpoint.Requests)["refresh_token"]);
        var stored = (await replicas[2].Store.GetAsync("mcp", default))!;
        Assert.Equal("rt-2", stored.Secrets.RefreshToken);
        Assert.Null(stored.Coordination.Lease.Owner);
    }

    [Fact]
    public async Task GetAccessToken_LeaseLeftByVanishedReplica_TakenOverWhenItRunsOutOnTheDatabaseClock()
    {
        var (store, engine) = Replica();
        await store.CreateAsync(Expired(), default);

        // A replica on another host took the lease and vanished before sending anything: only the lease time frees it.
        Assert.True(await store.TryAcquireLeaseAsync("mcp", "other-host/boot/1/1/gone", null, 0, TimeSpan.FromSeconds(1), default));
        _endpoint.Then(HttpStatusCode.OK, ScriptedTokenEndpoint.Tokens("at-2", "rt-2"));

        var result = await engine.GetAccessTokenAsync("mcp", null, default);

        Assert.Equal("at-2", result.AccessToken);
        Assert.Single(_endpoint.Requests);
        Assert.Equal(2, (await store.GetAsync("mcp", default))!.Coordination.Lease.Epoch);
    }
}
