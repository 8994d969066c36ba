using System.Security.Cryptography;
using System.Text;
using Latchkey.Store;
using Npgsql;

namespace Latchkey.Tests.Store;

/// <summary>What is particular to the PostgreSQL backend: migrations, the database clock, keys, corruption, canaries.</summary>
[Collection(PostgresTests.Name)]
public sealed class PostgresCredentialStoreTests(PostgresServer server)
{
    private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);

    private static PostgresCredentialStore Open(string url, TimeProvider? time = null, byte[]? key = null) =>
        PostgresCredentialStore.Open(PostgresLocation.Parse(url), new SecretProtector(key ?? Key), time ?? TimeProvider.System);

    private async Task<T> ScalarAsync<T>(string url, string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private async Task ExecuteAsync(string url, string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Open_ManyReplicasAtOnce_MigrateOnceAndAllWork()
    {
        var url = await server.CreateDatabaseAsync();
        const int replicas = 8;
        using var gate = new Barrier(replicas);

        var stores = await Task.WhenAll(Enumerable.Range(0, replicas).Select(_ => Task.Run(() =>
        {
            gate.SignalAndWait();
            return Open(url);
        })));

        try
        {
            Assert.Equal((long)PostgresCredentialStore.SchemaVersion, await ScalarAsync<long>(url, "SELECT count(*) FROM schema_version"));
            Assert.Equal(PostgresCredentialStore.SchemaVersion, await ScalarAsync<int>(url, "SELECT max(version) FROM schema_version"));
            await stores[0].CreateAsync(CredentialStoreContractTests.ApiKey("a", "secret-a"), default);
            foreach (var store in stores)
            {
                Assert.Equal("secret-a", (await store.GetAsync("a", default))!.Secrets.ApiKey);
            }
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Open_SchemaFromNewerLatchkey_RefusedAndUntouched()
    {
        var url = await server.CreateDatabaseAsync();
        await using (Open(url))
        {
        }

        await ExecuteAsync(url, "INSERT INTO schema_version (version, applied_by) VALUES (99, 'future')");

        var ex = Assert.Throws<StoreException>(() => Open(url));

        Assert.Equal("newer_schema", ex.Code);
        Assert.Equal(99, await ScalarAsync<int>(url, "SELECT max(version) FROM schema_version"));
    }

    [Fact]
    public async Task Open_ReplicaWithAnotherKey_RefusedWithKeyAdvice()
    {
        var url = await server.CreateDatabaseAsync();
        await using (var first = Open(url))
        {
            await first.CreateAsync(CredentialStoreContractTests.ApiKey("a"), default);
        }

        var ex = Assert.Throws<StoreException>(() => Open(url, key: RandomNumberGenerator.GetBytes(32)));

        Assert.Equal("key_mismatch", ex.Code);
        Assert.Contains("LATCHKEY_KEY_FILE", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TryAcquireLeaseAsync_CallerClockAnHourOff_LeaseTimedOnTheDatabaseClock()
    {
        var url = await server.CreateDatabaseAsync();
        var ahead = new ShiftedTimeProvider(TimeSpan.FromHours(1));
        await using var store = Open(url, ahead);
        await store.CreateAsync(CredentialStoreContractTests.OAuth("mcp"), default);

        Assert.True(await store.TryAcquireLeaseAsync("mcp", "me", null, 0, TimeSpan.FromMinutes(10), default));

        // In the database: ten minutes from the database's own now, whatever the caller's clock says.
        var left = await ScalarAsync<long>(url, $"SELECT lease_until - {PostgresSchema.NowMs} FROM credential WHERE name = 'mcp'");
        Assert.InRange(left, TimeSpan.FromMinutes(9).TotalMilliseconds, TimeSpan.FromMinutes(10).TotalMilliseconds);

        // As read: the same ten minutes, on the caller's clock.
        var read = (await store.GetAsync("mcp", default))!.Coordination;
        Assert.Equal("me", read.Lease.Owner);
        Assert.InRange(read.Lease.Until!.Value, ahead.GetUtcNow() + TimeSpan.FromMinutes(9), ahead.GetUtcNow() + TimeSpan.FromMinutes(10));
    }

    [Fact]
    public async Task TryAcquireLeaseAsync_TwoReplicasWithSkewedClocks_OnlyOneHoldsIt()
    {
        var url = await server.CreateDatabaseAsync();
        await using var ahead = Open(url, new ShiftedTimeProvider(TimeSpan.FromMinutes(30)));
        var behindClock = new ShiftedTimeProvider(TimeSpan.FromMinutes(-30));
        await using var behind = Open(url, behindClock);
        await ahead.CreateAsync(CredentialStoreContractTests.OAuth("mcp"), default);
        var observed = (await behind.GetAsync("mcp", default))!.Coordination;

        var results = await Task.WhenAll(
            ahead.TryAcquireLeaseAsync("mcp", "ahead", observed.Lease.Owner, observed.Lease.Epoch, TimeSpan.FromMinutes(5), default),
            behind.TryAcquireLeaseAsync("mcp", "behind", observed.Lease.Owner, observed.Lease.Epoch, TimeSpan.FromMinutes(5), default));

        Assert.Single(results, r => r);
        var seenByBehind = (await behind.GetAsync("mcp", default))!.Coordination;
        Assert.True(seenByBehind.Lease.Until > behindClock.GetUtcNow(), "the replica whose clock is behind still sees the lease as running");
        Assert.True(seenByBehind.Lease.Until <= behindClock.GetUtcNow() + TimeSpan.FromMinutes(5), "and not as running for longer than it was taken");
    }

    [Fact]
    public async Task RecordRefreshFailureAsync_BackoffAndAttempt_OnTheDatabaseClock()
    {
        var url = await server.CreateDatabaseAsync();
        var behind = new ShiftedTimeProvider(TimeSpan.FromHours(-3));
        await using var store = Open(url, behind);
        await store.CreateAsync(CredentialStoreContractTests.OAuth("mcp"), default);
        var fp = (await store.GetAsync("mcp", default))!.RefreshTokenFingerprint;
        Assert.True(await store.TryAcquireLeaseAsync("mcp", "me", null, 0, TimeSpan.FromMinutes(1), default));
        Assert.True(await store.MarkAttemptAsync("mcp", "me", "attempt-1", fp, null, default));
        var sentAge = await ScalarAsync<long>(url, $"SELECT {PostgresSchema.NowMs} - attempt_sent_at FROM credential WHERE name = 'mcp'");

        var recorded = await store.RecordRefreshFailureAsync("mcp", "me", new StateReason("server_error", "503", null, behind.GetUtcNow()),
            behind.GetUtcNow() + TimeSpan.FromMinutes(10), clearAttempt: true, default);

        Assert.True(recorded);
        Assert.InRange(sentAge, 0, TimeSpan.FromMinutes(1).TotalMilliseconds);
        var left = await ScalarAsync<long>(url, $"SELECT backoff_until - {PostgresSchema.NowMs} FROM credential WHERE name = 'mcp'");
        Assert.InRange(left, TimeSpan.FromMinutes(9).TotalMilliseconds, TimeSpan.FromMinutes(10).TotalMilliseconds);
        var c = (await store.GetAsync("mcp", default))!.Coordination;
        Assert.Null(c.Lease.Owner);
        Assert.Null(c.Attempt);
        Assert.Equal(1, c.Failures);
        Assert.InRange(c.BackoffUntil!.Value, behind.GetUtcNow() + TimeSpan.FromMinutes(9), behind.GetUtcNow() + TimeSpan.FromMinutes(10));
    }

    [Fact]
    public async Task UpdateAsync_CompletesRefreshOf_ClearsAttemptAndReleasesOwnLease()
    {
        var url = await server.CreateDatabaseAsync();
        await using var store = Open(url);
        await store.CreateAsync(CredentialStoreContractTests.OAuth("mcp"), default);
        var fp = (await store.GetAsync("mcp", default))!.RefreshTokenFingerprint;
        Assert.True(await store.TryAcquireLeaseAsync("mcp", "me", null, 0, TimeSpan.FromMinutes(1), default));
        Assert.True(await store.MarkAttemptAsync("mcp", "me", "attempt-1", fp, null, default));

        var result = await store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-2", RefreshToken = "rt-2", CompletesRefreshOf = "me" }, WriteCondition.RefreshToken(fp), default);

        Assert.Equal(WriteOutcome.Written, result.Outcome);
        Assert.Null(result.Record!.Coordination.Attempt);
        Assert.Null(result.Record.Coordination.Lease.Owner);
        Assert.False(await store.MarkAttemptAsync("mcp", "me", "attempt-2", fp, null, default), "the old refresh token no longer matches");
    }

    [Fact]
    public async Task Get_FlippedCiphertextByte_QuarantinesOnlyThatRowAndKeepsItsBytes()
    {
        var url = await server.CreateDatabaseAsync();
        await using var store = Open(url);
        foreach (var name in new[] { "a", "b", "c" })
        {
            await store.CreateAsync(CredentialStoreContractTests.ApiKey(name, $"secret-{name}"), default);
        }

        var before = await ScalarAsync<byte[]>(url, "SELECT secret_ct FROM credential WHERE name = 'b'");
        await ExecuteAsync(url, "UPDATE credential SET secret_ct = set_byte(secret_ct, 30, get_byte(secret_ct, 30) # 1) WHERE name = 'b'");
        var corrupted = await ScalarAsync<byte[]>(url, "SELECT secret_ct FROM credential WHERE name = 'b'");

        var b = (await store.GetAsync("b", default))!;
        var list = await store.ListAsync(default);
        var update = await store.UpdateAsync("b", new CredentialPatch { ApiKey = "x" }, WriteCondition.None, default);

        Assert.Equal(CredentialState.Quarantined, b.State);
        Assert.Equal("decrypt_failed", b.Reason!.Code);
        Assert.Null(b.Secrets.ApiKey);
        Assert.Equal(WriteOutcome.Quarantined, update.Outcome);
        Assert.Equal(["a", "b", "c"], list.Select(r => r.Name));
        Assert.Equal("secret-a", list[0].Secrets.ApiKey);
        Assert.Equal("secret-c", list[2].Secrets.ApiKey);
        Assert.NotEqual(before, corrupted);
        Assert.Equal(corrupted, await ScalarAsync<byte[]>(url, "SELECT secret_ct FROM credential WHERE name = 'b'"));
    }

    [Fact]
    public async Task Get_UndecodableMetadata_QuarantinedWithReason()
    {
        var url = await server.CreateDatabaseAsync();
        await using var store = Open(url);
        await store.CreateAsync(CredentialStoreContractTests.ApiKey("a"), default);
        await ExecuteAsync(url, "UPDATE credential SET metadata_json = '{not json' WHERE name = 'a'");

        var a = (await store.GetAsync("a", default))!;

        Assert.Equal(CredentialState.Quarantined, a.State);
        Assert.Equal("row_corrupt", a.Reason!.Code);
        Assert.Contains("metadata", a.Reason.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Write_SecretsAndClientKeys_NeverInClearInTheDatabaseFiles()
    {
        const string canary = "sk-CANARY-9d2e4f6a8b1c";
        var url = await server.CreateDatabaseAsync();
        await using var store = Open(url);
        await store.CreateAsync(new NewCredential("a", CredentialKind.OAuth, new CredentialMetadata { Upstream = "https://PLAINMARKER.example" },
            new CredentialSecrets { AccessToken = canary + "-at", RefreshToken = canary + "-rt", ClientSecret = canary + "-cs" }), default);
        for (var i = 0; i < 5; i++)
        {
            await store.UpdateAsync("a", new CredentialPatch { AccessToken = $"{canary}-at-{i}" }, WriteCondition.None, default);
        }

        var (_, keyValue) = (await store.CreateKeyAsync("agent", ["a"], null, default))!.Value;
        await ExecuteAsync(url, "CHECKPOINT");

        var needles = new[] { Encoding.UTF8.GetBytes("CANARY"), Encoding.UTF8.GetBytes(keyValue) };
        var control = false; // the scan must see the table's pages: the clear metadata is found
        foreach (var file in Directory.EnumerateFiles(server.DataPath, "*", SearchOption.AllDirectories))
        {
            byte[] bytes;
            try
            {
                bytes = await File.ReadAllBytesAsync(file);
            }
            catch (IOException)
            {
                continue; // a file PostgreSQL removed while we looked
            }

            foreach (var needle in needles)
            {
                Assert.True(bytes.AsSpan().IndexOf(needle) < 0, $"a secret is in clear in {file}");
            }

            control |= bytes.AsSpan().IndexOf("PLAINMARKER"u8) >= 0;
        }

        Assert.True(control, "the scan did not find the clear metadata, so it did not read the table's files");

        Assert.Equal(ClientKeyStatus.Valid, (await store.VerifyKeyAsync(keyValue, default)).Status);
    }

    [Fact]
    public async Task ClientKeys_CreateVerifyRevokeDelete_SameAnswersAsSqlite()
    {
        var url = await server.CreateDatabaseAsync();
        await using var store = Open(url);

        var (key, value) = (await store.CreateKeyAsync("agent", ["a", "b"], null, default))!.Value;
        var duplicate = await store.CreateKeyAsync("agent", ["a"], null, default);
        var valid = await store.VerifyKeyAsync(value, default);
        var wrong = await store.VerifyKeyAsync(value[..^1] + (value[^1] == 'a' ? 'b' : 'a'), default);
        var revoked = await store.RevokeKeyAsync("agent", default);
        var afterRevoke = await store.VerifyKeyAsync(value, default);
        var listed = await store.ListKeysAsync(default);
        var deleted = await store.DeleteKeyAsync("agent", default);

        Assert.Null(duplicate);
        Assert.Equal(ClientKeyStatus.Valid, valid.Status);
        Assert.Equal(["a", "b"], valid.Key!.Credentials);
        Assert.Equal(ClientKeyStatus.Unknown, wrong.Status);
        Assert.True(revoked);
        Assert.Equal(ClientKeyStatus.Revoked, afterRevoke.Status);
        Assert.Equal(key.KeyId, Assert.Single(listed).KeyId);
        Assert.True(deleted);
        Assert.Equal(ClientKeyStatus.Unknown, (await store.VerifyKeyAsync(value, default)).Status);
        Assert.Equal(0L, await ScalarAsync<long>(url, $"SELECT count(*) FROM client_key WHERE secret_fp = '{value}'"));
    }

    [Fact]
    public async Task Open_RoleWithPasswordAndOnlyDml_WorksOnceMigratedAndWrongPasswordNeverShown()
    {
        var url = await server.CreateDatabaseAsync();
        var role = "app_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        const string password = "pw-CANARY-right-8c1d";
        var database = url[(url.LastIndexOf('/') + 1)..];
        var appUrl = $"postgresql://{role}:{password}@127.0.0.1:{server.Port}/{database}";
        await ExecuteAsync(url, $"CREATE ROLE {role} LOGIN PASSWORD '{password}'");

        var beforeMigration = Assert.Throws<StoreException>(() => Open(appUrl));
        await using (Open(url))
        {
        }

        await ExecuteAsync(url, $"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}");
        await using (var app = Open(appUrl))
        {
            await app.CreateAsync(CredentialStoreContractTests.ApiKey("a", "secret-a"), default);
            Assert.True((await app.UpdateAsync("a", new CredentialPatch { ApiKey = "secret-b" }, WriteCondition.Version(1), default)).Succeeded);
            Assert.True(await app.TryAcquireLeaseAsync("a", "me", null, 0, TimeSpan.FromSeconds(30), default));
            Assert.NotNull(await app.CreateKeyAsync("agent", ["a"], null, default));
            await app.AppendAsync([new Latchkey.Audit.AuditEntry(DateTimeOffset.UnixEpoch, "agent", "a", "/c/a", "GET", "/c/a/x", 200, 200, 3, null, "h/1")], default);
            Assert.Equal(1, await app.PruneAsync(DateTimeOffset.UnixEpoch.AddSeconds(1), default)); // the audit log needs no more than DML either
        }

        var wrong = Assert.Throws<StoreException>(() => Open(appUrl.Replace(password, "pw-CANARY-wrong-3b7a", StringComparison.Ordinal)));

        Assert.Equal("permission_denied", beforeMigration.Code);
        Assert.Equal("auth_failed", wrong.Code);
        Assert.False(wrong.Retryable);
        Assert.Contains(role, wrong.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("CANARY", beforeMigration.ToString() + wrong.ToString(), StringComparison.Ordinal);
    }

    /// <summary>The system clock moved by a fixed amount: a replica whose clock is wrong.</summary>
    private sealed class ShiftedTimeProvider(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + shift;
    }
}
