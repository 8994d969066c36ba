using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>The readiness check (the gateway's <c>/readyz</c>), on every backend.</summary>
public abstract partial class CredentialStoreContractTests
{
    [Fact]
    public async Task CheckReadyAsync_FreshStore_ReadyWithoutAReason()
    {
        var readiness = await ((ILatchkeyStore)Store).CheckReadyAsync(default);

        Assert.True(readiness.IsReady, readiness.Detail);
        Assert.Null(readiness.Reason);
    }

    [Fact]
    public async Task CheckReadyAsync_SealedMarkerChangedOutsideLatchkey_MasterKeyMismatch()
    {
        await ExecuteSqlAsync($"UPDATE store_meta SET value = 'not-a-seal' WHERE name = '{RowCodec.RowsSealedMarkerName}'");

        var readiness = await ((ILatchkeyStore)Store).CheckReadyAsync(default);

        Assert.False(readiness.IsReady);
        Assert.Equal(CredentialStore.KeyMismatchReason, readiness.Reason);
    }
}
