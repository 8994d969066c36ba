using Latchkey.Store;
using Microsoft.Data.Sqlite;

namespace Latchkey.Tests.Store;

/// <summary>The contract suite on the embedded SQLite backend.</summary>
public sealed class SqliteCredentialStoreContractTests : CredentialStoreContractTests, IDisposable
{
    private readonly TempHome _home = new();

    internal override Task<ICredentialStore> OpenFreshAsync() =>
        Task.FromResult<ICredentialStore>(SqliteCredentialStore.Open(_home.Home, TimeProvider.System));

    internal override Task<ICredentialStore> OpenAgainAsync() => OpenFreshAsync();

    internal override Task<ICredentialStore> OpenAgainAsync(StoreSealing sealing) =>
        Task.FromResult<ICredentialStore>(SqliteCredentialStore.Open(_home.Home, TimeProvider.System, sealing));

    internal override SealLedger Ledger => SealLedger.In(_home.Home);

    internal override Task ExecuteSqlAsync(string sql)
    {
        using var connection = new SqliteConnection($"Data Source={_home.Home.DatabasePath};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
        return Task.CompletedTask;
    }

    internal override async Task TurnBackBeforeSealsAsync(bool keepMarker)
    {
        // The open store's pooled connections cache the schema this changes; a fresh process would not have them.
        SqliteConnection.ClearAllPools();
        await ExecuteSqlAsync(
            "ALTER TABLE credential DROP COLUMN row_mac; ALTER TABLE credential DROP COLUMN last_error_mac; ALTER TABLE credential DROP COLUMN upstream_failure_mac; ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN made_for; " +
            "ALTER TABLE client_key DROP COLUMN rate_limit; ALTER TABLE client_key DROP COLUMN rate_window_s; ALTER TABLE client_key DROP COLUMN tokens_per_day; ALTER TABLE client_key DROP COLUMN concurrent_limit; DROP TABLE key_limit_state; DROP TABLE key_lease; " +
            (keepMarker ? string.Empty : "DROP TABLE store_meta; ") + $"PRAGMA user_version = {SqliteSchema.RowsSealedFrom - 1}");
    }

    internal override Task TurnBackBeforeUsageAsync()
    {
        SqliteConnection.ClearAllPools();
        return ExecuteSqlAsync($"DROP TABLE usage_daily; PRAGMA user_version = {SqliteSchema.UsageFrom - 1}");
    }

    public void Dispose() => _home.Dispose();
}
