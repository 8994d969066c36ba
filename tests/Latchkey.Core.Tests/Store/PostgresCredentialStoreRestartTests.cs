using System.Security.Cryptography;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// PostgreSQL going away and coming back while the store is in use: retryable errors meanwhile, then the pool
/// reconnects by itself and nothing committed is lost. Uses a server of its own (a class fixture, outside the
/// shared collection), since it stops it.
/// </summary>
public sealed class PostgresCredentialStoreRestartTests(PostgresServer server) : IClassFixture<PostgresServer>, IAsyncLifetime
{
    private const string PasswordCanary = "pw-CANARY-51c7e0";
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private readonly PostgresServer _server = server;
    private string _url = string.Empty;

    public async Task InitializeAsync()
    {
        // Trust authentication ignores the password; it is there to prove no message ever shows it.
        _url = (await _server.CreateDatabaseAsync()).Replace("://latchkey@", $"://latchkey:{PasswordCanary}@", StringComparison.Ordinal);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private PostgresCredentialStore Open() => PostgresCredentialStore.Open(PostgresLocation.Parse(_url), new SecretProtector(Key), TimeProvider.System);

    [Fact]
    public async Task Operations_PostgresStopped_RetryableUnavailableWithoutPasswordThenReconnectNothingLost()
    {
        await using var store = Open();
        await store.CreateAsync(CredentialStoreContractTests.OAuth("mcp"), default);
        for (var i = 2; i <= 5; i++)
        {
            await store.UpdateAsync("mcp", new CredentialPatch { AccessToken = $"at-{i}" }, WriteCondition.None, default);
        }

        var (_, keyValue) = (await store.CreateKeyAsync("agent", ["mcp"], null, default))!.Value;

        await _server.StopAsync("fast");
        var failures = new List<StoreException>
        {
            await Assert.ThrowsAsync<StoreException>(() => store.GetAsync("mcp", default)),
            await Assert.ThrowsAsync<StoreException>(() => store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "lost" }, WriteCondition.Version(5), default)),
            await Assert.ThrowsAsync<StoreException>(() => store.TryAcquireLeaseAsync("mcp", "me", null, 0, TimeSpan.FromSeconds(30), default)),
            await Assert.ThrowsAsync<StoreException>(() => store.VerifyKeyAsync(keyValue, default)),
        };
        await _server.StartAsync();

        Assert.All(failures, f =>
        {
            Assert.Equal("store_unavailable", f.Code);
            Assert.True(f.Retryable);
            Assert.Contains("127.0.0.1", f.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("CANARY", f.ToString(), StringComparison.Ordinal);
        });
        var read = (await store.GetAsync("mcp", default))!;
        Assert.Equal(5, read.Version);
        Assert.Equal("at-5", read.Secrets.AccessToken);
        Assert.Equal("rt-1", read.Secrets.RefreshToken);
        Assert.Equal(4, (await store.GetHistoryAsync("mcp", default)).Count);
        Assert.Equal(ClientKeyStatus.Valid, (await store.VerifyKeyAsync(keyValue, default)).Status);
        Assert.True((await store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-6" }, WriteCondition.Version(5), default)).Succeeded);
    }

    [Fact]
    public async Task Operations_PostgresRestartedWhileConnectionsIdle_ReadReconnectsAtOnceAndWritesAtMostOneRetryableError()
    {
        await using var store = Open();
        await store.CreateAsync(CredentialStoreContractTests.ApiKey("a", "v1"), default);
        Assert.NotNull(await store.GetAsync("a", default)); // the pool now holds a connection that the restart breaks

        await _server.StopAsync("fast");
        await _server.StartAsync();

        var read = await store.GetAsync("a", default);
        Assert.Equal("v1", read!.Secrets.ApiKey);
        Assert.NotNull(await store.GetAsync("a", default));
        await _server.StopAsync("immediate");
        await _server.StartAsync();
        WriteResult? written = null;
        for (var attempt = 0; attempt < 2 && written is null; attempt++)
        {
            try
            {
                written = await store.UpdateAsync("a", new CredentialPatch { ApiKey = "v2" }, WriteCondition.Version(1), default);
            }
            catch (StoreException ex) when (ex.Retryable && ex.Code == "store_unavailable")
            {
            }
        }

        Assert.NotNull(written);
        Assert.Equal(WriteOutcome.Written, written.Outcome);
        Assert.Equal("v2", (await store.GetAsync("a", default))!.Secrets.ApiKey);
    }

    [Fact]
    public async Task Operations_PostgresCrashedUnderWritesAndRestarted_EveryAcknowledgedWriteKept()
    {
        await using var store = Open();
        await store.CreateAsync(new NewCredential("counter", CredentialKind.ApiKey, new CredentialMetadata(), new CredentialSecrets { ApiKey = "0" }), default);
        var acknowledged = 0;
        var otherFailures = new List<Exception>();
        using var stop = new CancellationTokenSource();

        async Task Writer()
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var current = (await store.GetAsync("counter", default))!;
                    var next = int.Parse(current.Secrets.ApiKey!, System.Globalization.CultureInfo.InvariantCulture) + 1;
                    var result = await store.UpdateAsync("counter", new CredentialPatch { ApiKey = next.ToString(System.Globalization.CultureInfo.InvariantCulture) }, WriteCondition.Version(current.Version), default);
                    if (result.Succeeded)
                    {
                        Interlocked.Increment(ref acknowledged);
                    }
                }
                catch (StoreException ex) when (ex.Retryable)
                {
                    await RealTime.ForAsync(TimeSpan.FromMilliseconds(50)); // PostgreSQL is a real process, restarting on its own time
                }
                catch (Exception ex)
                {
                    lock (otherFailures)
                    {
                        otherFailures.Add(ex);
                    }

                    return;
                }
            }
        }

        async Task WaitForAcks(int count) =>
            Assert.True(await RealTime.UntilAsync(() => Volatile.Read(ref acknowledged) >= count, TimeSpan.FromMinutes(2), TimeSpan.FromMilliseconds(20)), $"fewer than {count} writes acknowledged");

        var writers = Enumerable.Range(0, 3).Select(_ => Task.Run(Writer)).ToArray();
        await WaitForAcks(20);
        await _server.StopAsync("immediate"); // a crash: no shutdown checkpoint, recovery from the WAL
        var atCrash = Volatile.Read(ref acknowledged);
        await _server.StartAsync();
        await WaitForAcks(atCrash + 20);
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        Assert.Empty(otherFailures);
        var final = (await store.GetAsync("counter", default))!;
        var value = int.Parse(final.Secrets.ApiKey!, System.Globalization.CultureInfo.InvariantCulture);

        // Every acknowledged write is there; a write whose commit answer was lost in the crash may be too.
        Assert.InRange(value, acknowledged, acknowledged + writers.Length);
        Assert.Equal(value + 1, final.Version);
    }
}
