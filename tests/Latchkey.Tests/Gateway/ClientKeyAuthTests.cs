using Latchkey.Gateway;
using Latchkey.Store;

namespace Latchkey.Tests.Gateway;

/// <summary>The client-key check: a value that is not a well-formed key never reaches the store.</summary>
public sealed class ClientKeyAuthTests
{
    [Theory]
    [InlineData("lk_")]
    [InlineData("lk_garbage")]
    [InlineData("lk_abcdefghijkl_tooshort")]
    [InlineData("lk_ABCDEFGHIJKL_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // id outside the key alphabet
    [InlineData("lk_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!")]
    public async Task CheckAsync_MalformedKey_IsMalformedWithoutAStoreLookup(string presented)
    {
        var store = new CountingKeys();
        var auth = new ClientKeyAuth(store, TimeProvider.System, new GatewayOptions());

        var check = await auth.CheckAsync(presented, default);

        Assert.Equal(ClientKeyStatus.Malformed, check.Status);
        Assert.Equal(0, store.Lookups);
    }

    [Fact]
    public async Task CheckAsync_WellFormedKey_IsLookedUpOncePerCacheTime()
    {
        var store = new CountingKeys();
        var auth = new ClientKeyAuth(store, TimeProvider.System, new GatewayOptions { CacheTime = TimeSpan.FromMinutes(1) });
        var (value, _) = ClientKeyFormat.Generate();

        Assert.Equal(ClientKeyStatus.Unknown, (await auth.CheckAsync(value, default)).Status);
        Assert.Equal(ClientKeyStatus.Unknown, (await auth.CheckAsync(value, default)).Status);
        Assert.Equal(1, store.Lookups);
    }

    private sealed class CountingKeys : IClientKeyStore
    {
        public int Lookups { get; private set; }

        public Task<ClientKeyCheck> VerifyKeyAsync(string presented, CancellationToken cancellationToken)
        {
            Lookups++;
            return Task.FromResult(ClientKeyCheck.Unknown);
        }

        public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<ClientKey>> ListKeysAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
