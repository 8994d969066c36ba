using System.Text;
using Latchkey.Store;
using Microsoft.Data.Sqlite;

namespace Latchkey.Tests.Store;

/// <summary>What is particular to the SQLite backend: files, permissions, corruption, schema.</summary>
public sealed class SqliteCredentialStoreTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private SqliteCredentialStore Open() => SqliteCredentialStore.Open(_home.Home, TimeProvider.System);

    [Fact]
    public async Task Open_FreshHome_FolderIs0700AndFilesAre0600()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("a"), default);
        }

        Assert.Equal(StoreHome.FolderMode, File.GetUnixFileMode(_home.Path));
        var files = Directory.GetFiles(_home.Path);
        Assert.Contains(files, f => f.EndsWith("latchkey.db", StringComparison.Ordinal));
        Assert.Contains(files, f => f.EndsWith("master.key", StringComparison.Ordinal));
        Assert.All(files, f => Assert.Equal(StoreHome.FileMode, File.GetUnixFileMode(f)));
    }

    [Fact]
    public async Task Write_SecretBytes_NeverInAnyFileIncludingWal()
    {
        const string canary = "sk-CANARY-7f3a9c1e5b2d";
        await using var store = Open();
        await store.CreateAsync(new NewCredential("a", CredentialKind.OAuth, new CredentialMetadata(),
            new CredentialSecrets { AccessToken = canary + "-at", RefreshToken = canary + "-rt", ClientSecret = canary + "-cs" }), default);
        for (var i = 0; i < 20; i++)
        {
            await store.UpdateAsync("a", new CredentialPatch { AccessToken = $"{canary}-at-{i}" }, WriteCondition.None, default);
        }

        // The store is still open: the WAL and shared-memory files exist and hold the recent pages.
        var files = Directory.GetFiles(_home.Path);
        Assert.Contains(files, f => f.EndsWith("-wal", StringComparison.Ordinal));
        foreach (var file in files)
        {
            var bytes = ReadShared(file);
            Assert.Equal(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes("CANARY")));
            Assert.Equal(-1, bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes("CANARY")));
        }
    }

    [Fact]
    public async Task Open_HomeOpenToOthers_RefusedWithChmodAdvice()
    {
        Directory.CreateDirectory(_home.Path);
        File.SetUnixFileMode(_home.Path, StoreHome.FolderMode | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);

        var ex = Assert.Throws<StoreException>(Open);

        Assert.Equal("home_permissions", ex.Code);
        Assert.Contains("chmod 700", ex.Message, StringComparison.Ordinal);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Get_FlippedCiphertextByte_QuarantinesOnlyThatRowAndKeepsItsBytes()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("a", "secret-a"), default);
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("b", "secret-b"), default);
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("c", "secret-c"), default);
        }

        var original = CorruptCiphertext("b");

        await using var reopened = Open();
        var b = (await reopened.GetAsync("b", default))!;
        Assert.Equal(CredentialState.Quarantined, b.State);
        Assert.Equal("decrypt_failed", b.Reason!.Code);
        Assert.Contains("latchkey restore b", b.Reason.Fix, StringComparison.Ordinal);
        Assert.Same(CredentialSecrets.Empty, b.Secrets);
        Assert.Equal("secret-a", (await reopened.GetAsync("a", default))!.Secrets.ApiKey);
        Assert.Equal("secret-c", (await reopened.GetAsync("c", default))!.Secrets.ApiKey);
        Assert.Equal(3, (await reopened.ListAsync(default)).Count);
        var refused = await reopened.UpdateAsync("b", new CredentialPatch { Metadata = m => m with { Upstream = "https://x.example" } }, WriteCondition.None, default);
        Assert.Equal(WriteOutcome.Quarantined, refused.Outcome);
        Assert.Equal(original.Length, ReadCiphertext("b").Length);
        Assert.NotEqual(original, ReadCiphertext("b"));
    }

    [Fact]
    public async Task Restore_QuarantinedCurrentVersion_BringsBackReadableVersionAndKeepsTheBadOne()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("b", "good"), default);
            await store.UpdateAsync("b", new CredentialPatch { ApiKey = "newer" }, WriteCondition.None, default);
        }

        CorruptCiphertext("b");

        await using var reopened = Open();
        var restored = await reopened.RestoreAsync("b", 1, WriteCondition.None, default);

        Assert.Equal(WriteOutcome.Written, restored.Outcome);
        Assert.Equal("good", (await reopened.GetAsync("b", default))!.Secrets.ApiKey);
        var history = await reopened.GetHistoryAsync("b", default);
        Assert.Contains(history, h => h.Version == 2 && !h.Readable);
    }

    [Fact]
    public async Task Get_KeyFileReplaced_QuarantinedWithKeyReasonAndOriginalKeyRecovers()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("a", "secret-a"), default);
        }

        var keyFile = _home.Home.KeyFilePath;
        var originalKey = await File.ReadAllBytesAsync(keyFile);
        await File.WriteAllBytesAsync(keyFile, new byte[32]);

        await using (var wrongKey = Open())
        {
            var record = (await wrongKey.GetAsync("a", default))!;
            Assert.Equal(CredentialState.Quarantined, record.State);
            Assert.Contains("key file", record.Reason!.Message, StringComparison.Ordinal);
        }

        await File.WriteAllBytesAsync(keyFile, originalKey);
        await using var rightKey = Open();
        Assert.Equal("secret-a", (await rightKey.GetAsync("a", default))!.Secrets.ApiKey);
    }

    [Fact]
    public async Task Open_KeyFileWrongLength_RefusedWithoutChangingAnything()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("a"), default);
        }

        await File.WriteAllBytesAsync(_home.Home.KeyFilePath, new byte[7]);

        var ex = Assert.Throws<StoreException>(Open);
        Assert.Equal("key_invalid", ex.Code);
        Assert.Equal(7, new FileInfo(_home.Home.KeyFilePath).Length);
    }

    [Fact]
    public async Task Open_KeyFileMissingBesideRecords_RefusedWithoutMakingANewKeyAndTheOldKeyRecovers()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("a", "secret-a"), default);
        }

        var keyFile = _home.Home.KeyFilePath;
        var originalKey = await File.ReadAllBytesAsync(keyFile);
        File.Delete(keyFile);
        var database = await File.ReadAllBytesAsync(_home.Home.DatabasePath);

        var ex = Assert.Throws<StoreException>(Open);

        Assert.Equal("key_missing", ex.Code);
        Assert.Contains("Restore master.key", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(keyFile));
        Assert.Equal(database, await File.ReadAllBytesAsync(_home.Home.DatabasePath));

        await File.WriteAllBytesAsync(keyFile, originalKey);
        File.SetUnixFileMode(keyFile, StoreHome.FileMode);
        await using var recovered = Open();
        Assert.Equal("secret-a", (await recovered.GetAsync("a", default))!.Secrets.ApiKey);
    }

    [Fact]
    public async Task Open_KeyFileMissingBesideAnEmptyStore_MakesANewKey()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey("a"), default);
            Assert.True(await store.RemoveAsync("a", default));
        }

        File.Delete(_home.Home.KeyFilePath);

        await using var reopened = Open();
        Assert.True(File.Exists(_home.Home.KeyFilePath));
        Assert.Empty(await reopened.ListAsync(default));
    }

    [Fact]
    public async Task Open_NewerSchema_RefusedAndUntouched()
    {
        await using (Open())
        {
        }

        Execute("PRAGMA user_version = 99");

        var ex = Assert.Throws<StoreException>(Open);
        Assert.Equal("newer_schema", ex.Code);
        Assert.Contains("Upgrade Latchkey", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Open_SchemaVersion1WithData_MigratesForwardAndKeepsEveryRecord()
    {
        await using (var store = Open())
        {
            await store.CreateAsync(CredentialStoreContractTests.OAuth("mcp", "rt-v1"), default);
            await store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-v1" }, WriteCondition.None, default);
        }

        // Turn the database back into what schema 1 wrote.
        string[] v2Columns = ["at_fp", "lease_owner", "lease_until", "lease_epoch", "attempt_id", "attempt_rt_fp", "attempt_owner", "attempt_sent_at", "attempt_recovery_of", "backoff_until", "failures", "last_error_json", "upstream_failure_json"];
        Execute("DROP TABLE store_meta; DROP TABLE audit_event; DROP TABLE client_key; ALTER TABLE credential_history DROP COLUMN row_mac; " +
            string.Join(";", v2Columns.Concat(["row_mac", "last_error_mac", "upstream_failure_mac"]).Select(c => $"ALTER TABLE credential DROP COLUMN {c}")) + "; PRAGMA user_version = 1");
        Directory.Delete(SealLedger.In(_home.Home).Folder, recursive: true); // schema 1 was before this home recorded sealed stores

        await using var migrated = Open();
        var record = (await migrated.GetAsync("mcp", default))!;

        Assert.Equal(CredentialState.Ok, record.State);
        Assert.Equal("rt-v1", record.Secrets.RefreshToken);
        Assert.Equal("at-v1", record.Secrets.AccessToken);
        Assert.Equal(2, record.Version);
        Assert.Single(await migrated.GetHistoryAsync("mcp", default));
        Assert.True(await migrated.TryAcquireLeaseAsync("mcp", "me", null, 0, TimeSpan.FromSeconds(5), default));
        await migrated.AppendAsync([new Latchkey.Audit.AuditEntry(DateTimeOffset.UnixEpoch, "k", "mcp", "/c/mcp", "GET", "/c/mcp/x", 200, 200, 1, null, "h/1")], default);
        Assert.Single(await migrated.QueryAsync(new Latchkey.Audit.AuditQuery(), default)); // migration 4 added the audit log
    }

    [Fact]
    public async Task Open_DatabaseFileIsGarbage_CorruptErrorAndFileKept()
    {
        Directory.CreateDirectory(_home.Path, StoreHome.FolderMode);
        var garbage = Encoding.ASCII.GetBytes(new string('x', 8192));
        await File.WriteAllBytesAsync(_home.Home.DatabasePath, garbage);
        File.SetUnixFileMode(_home.Home.DatabasePath, StoreHome.FileMode);

        var ex = Assert.Throws<StoreException>(Open);

        Assert.Equal("database_corrupt", ex.Code);
        Assert.Contains("Nothing was deleted", ex.Message, StringComparison.Ordinal);
        Assert.Equal(garbage, await File.ReadAllBytesAsync(_home.Home.DatabasePath));
    }

    [Fact]
    public async Task Open_ManyInstancesOnFreshHome_AllAgreeOnOneKey()
    {
        var stores = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(Open)));
        try
        {
            Assert.Single(stores.Select(s => s.KeyId).Distinct());
        }
        finally
        {
            foreach (var s in stores)
            {
                await s.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task CheckIntegrity_HealthyDatabase_NoProblems()
    {
        await using var store = Open();
        await store.CreateAsync(CredentialStoreContractTests.ApiKey("a"), default);

        Assert.Empty(store.CheckIntegrity());
        Assert.True(store.SelfTest());
    }

    private byte[] ReadCiphertext(string name)
    {
        using var connection = new SqliteConnection($"Data Source={_home.Home.DatabasePath};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT secret_ct FROM credential WHERE name = $n";
        command.Parameters.AddWithValue("$n", name);
        return (byte[])command.ExecuteScalar()!;
    }

    /// <summary>Flips one byte of a row's ciphertext in the database file itself, as disk damage would.</summary>
    private byte[] CorruptCiphertext(string name)
    {
        Execute("PRAGMA wal_checkpoint(TRUNCATE)");
        var ciphertext = ReadCiphertext(name);
        var file = File.ReadAllBytes(_home.Home.DatabasePath);
        var at = file.AsSpan().IndexOf(ciphertext);
        Assert.True(at >= 0, "ciphertext not found in the database file");
        Assert.Equal(-1, file.AsSpan(at + 1).IndexOf(ciphertext));
        file[at + ciphertext.Length - 3] ^= 0x5A;
        File.WriteAllBytes(_home.Home.DatabasePath, file);
        return ciphertext;
    }

    private void Execute(string sql)
    {
        using var connection = new SqliteConnection($"Data Source={_home.Home.DatabasePath};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static byte[] ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
