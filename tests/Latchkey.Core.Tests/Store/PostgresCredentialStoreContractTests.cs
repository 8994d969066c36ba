using System.Security.Cryptography;
using Latchkey.Store;
using Npgsql;

namespace Latchkey.Tests.Store;

/// <summary>The contract suite on the PostgreSQL backend, against a real server; each test gets a fresh database.</summary>
[Collection(PostgresTests.Name)]
public sealed class PostgresCredentialStoreContractTests(PostgresServer server) : CredentialStoreContractTests, IDisposable
{
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);
    private readonly string _home = Directory.CreateTempSubdirectory("latchkey-pg-home-").FullName;
    private string? _url;

    /// <summary>The single-user case: the key is the home's own, so the home keeps the ledger.</summary>
    internal override SealLedger Ledger => new(Path.Combine(_home, SealLedger.FolderName));

    internal override async Task<ICredentialStore> OpenFreshAsync()
    {
        _url = await server.CreateDatabaseAsync();
        return await OpenAgainAsync();
    }

    internal override Task<ICredentialStore> OpenAgainAsync() => OpenAgainAsync(StoreSealing.ForHomeKey(Ledger));

    internal override Task<ICredentialStore> OpenAgainAsync(StoreSealing sealing) =>
        Task.FromResult<ICredentialStore>(PostgresCredentialStore.Open(PostgresLocation.Parse(_url!), new SecretProtector(Key), TimeProvider.System, sealing: sealing));

    internal override async Task ExecuteSqlAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(_url!));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    internal override Task TurnBackBeforeSealsAsync(bool keepMarker) => ExecuteSqlAsync(
        "ALTER TABLE credential DROP COLUMN row_mac; ALTER TABLE credential DROP COLUMN last_error_mac; ALTER TABLE credential DROP COLUMN upstream_failure_mac; ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; " +
        (keepMarker ? string.Empty : $"DELETE FROM store_meta WHERE name = '{RowCodec.RowsSealedMarkerName}'; ") +
        $"DELETE FROM schema_version WHERE version >= {PostgresSchema.RowsSealedFrom}");

    internal override Task TurnBackBeforeUsageAsync() =>
        ExecuteSqlAsync($"DROP TABLE usage_daily; DELETE FROM schema_version WHERE version >= {PostgresSchema.UsageFrom}");

    public void Dispose() => Directory.Delete(_home, recursive: true);
}
