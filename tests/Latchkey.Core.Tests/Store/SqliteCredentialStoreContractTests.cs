using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>The contract suite on the embedded SQLite backend.</summary>
public sealed class SqliteCredentialStoreContractTests : CredentialStoreContractTests, IDisposable
{
    private readonly TempHome _home = new();

    internal override Task<ICredentialStore> OpenFreshAsync() =>
        Task.FromResult<ICredentialStore>(SqliteCredentialStore.Open(_home.Home, TimeProvider.System));

    internal override Task<ICredentialStore> OpenAgainAsync() => OpenFreshAsync();

    public void Dispose() => _home.Dispose();
}
