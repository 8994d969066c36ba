using System.Security.Cryptography;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>The contract suite on the PostgreSQL backend, against a real server; each test gets a fresh database.</summary>
[Collection(PostgresTests.Name)]
public sealed class PostgresCredentialStoreContractTests(PostgresServer server) : CredentialStoreContractTests
{
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private string? _url;

    internal override async Task<ICredentialStore> OpenFreshAsync()
    {
        _url = await server.CreateDatabaseAsync();
        return await OpenAgainAsync();
    }

    internal override Task<ICredentialStore> OpenAgainAsync() =>
        Task.FromResult<ICredentialStore>(PostgresCredentialStore.Open(PostgresLocation.Parse(_url!), new SecretProtector(Key), TimeProvider.System));
}
