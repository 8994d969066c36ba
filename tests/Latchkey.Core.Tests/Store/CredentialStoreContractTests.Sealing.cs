using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// Whether a store was sealed is kept in the home folder (<see cref="SealLedger"/>), where someone who can write the
/// database cannot reach, because that writer can make a sealed store look like one from before seals (its seal
/// columns, marker and schema version removed together). A store from before seals is sealed on open only when the
/// key is the home's own and the home never saw the store sealed; with a team's shared key, only by an approved
/// <c>latchkey store seal</c>. The same rules on every backend.
/// </summary>
public abstract partial class CredentialStoreContractTests
{
    /// <summary>Opens another instance on the same storage with the given sealing rules.</summary>
    internal abstract Task<ICredentialStore> OpenAgainAsync(StoreSealing sealing);

    /// <summary>The ledger of the home the store under test is opened from (its master key is that home's own).</summary>
    internal abstract SealLedger Ledger { get; }

    /// <summary>Forgets that this home saw the store sealed, as a home an earlier Latchkey used.</summary>
    internal void ForgetSealRecord()
    {
        if (Directory.Exists(Ledger.Folder))
        {
            Directory.Delete(Ledger.Folder, recursive: true);
        }
    }

    [Fact]
    public async Task Open_StoreRolledBackToBeforeSealsThatThisHomeSawSealed_RefusedAsRolledBackAndNothingSealed()
    {
        await Store.CreateAsync(ApiKey("a"), default);
        await Keys.CreateKeyAsync("agent", ["a"], null, default);
        await ExecuteSqlAsync($"UPDATE credential SET metadata_json = replace(metadata_json, 'https://api.example.com', '{Attacker}') WHERE name = 'a'");
        await ExecuteSqlAsync("UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'agent'");
        await TurnBackBeforeSealsAsync(keepMarker: false);

        var ex = await Assert.ThrowsAsync<StoreException>(OpenAgainAsync);

        Assert.Equal(RowCodec.RolledBackCode, ex.Code);
        Assert.Contains("rolled it back", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Restore the database from a backup", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<Exception>(() => ExecuteSqlAsync("UPDATE credential SET row_mac = NULL")); // still no seal columns: nothing was sealed
        var shared = await Assert.ThrowsAsync<StoreException>(() => OpenAgainAsync(StoreSealing.ForSharedKey(Ledger)));
        Assert.Equal(RowCodec.RolledBackCode, shared.Code);
        var preview = await Assert.ThrowsAsync<StoreException>(() => OpenAgainAsync(StoreSealing.ForHomeKey(Ledger).ForPreview()));
        Assert.Equal(RowCodec.RolledBackCode, preview.Code); // not even the seal command seals it
    }

    [Fact]
    public async Task Open_MarkerRemovedFromACurrentStoreThisHomeSawSealed_RefusedAsRolledBack()
    {
        await Store.CreateAsync(ApiKey("a"), default);
        await ExecuteSqlAsync($"DELETE FROM store_meta WHERE name = '{RowCodec.RowsSealedMarkerName}'");

        var ex = await Assert.ThrowsAsync<StoreException>(OpenAgainAsync);
        ForgetSealRecord();
        await using var elsewhere = await OpenAgainAsync(); // a home that never saw it: rows still carry their seals

        Assert.Equal(RowCodec.RolledBackCode, ex.Code);
        Assert.Equal(CredentialState.Ok, (await elsewhere.GetAsync("a", default))!.State);
    }

    [Fact]
    public async Task Open_FreshHomeOnASealedStore_OpensNormallyAndRecordsTheStore()
    {
        await Store.CreateAsync(ApiKey("a", "sk-fresh"), default);
        ForgetSealRecord();

        await using (var shared = await OpenAgainAsync(StoreSealing.ForSharedKey(Ledger)))
        {
            Assert.Equal("sk-fresh", (await shared.GetAsync("a", default))!.Secrets.ApiKey);
        }

        Assert.True(Directory.Exists(Ledger.Folder) && Directory.EnumerateFiles(Ledger.Folder).Count() == 1, "the store was not recorded");
        await TurnBackBeforeSealsAsync(keepMarker: false);
        var ex = await Assert.ThrowsAsync<StoreException>(OpenAgainAsync);
        Assert.Equal(RowCodec.RolledBackCode, ex.Code); // recorded from then on
    }

    [Fact]
    public async Task Open_StoreFromBeforeSealsWithASharedKey_RefusedUntilAnApprovedSealing()
    {
        await Store.CreateAsync(OAuth("a"), default);
        await Store.UpdateAsync("a", new CredentialPatch { AccessToken = "at-2" }, WriteCondition.None, default);
        var (_, value) = (await Keys.CreateKeyAsync("agent", ["a"], null, default))!.Value;
        await Store.RecordUpstreamFailureAsync("a", new UpstreamFailure("token_rejected", "no", null, 401, null, DateTimeOffset.UnixEpoch), default);
        await TurnBackBeforeSealsAsync(keepMarker: false);
        ForgetSealRecord();
        var team = StoreSealing.ForSharedKey(Ledger);

        var refused = await Assert.ThrowsAsync<StoreException>(() => OpenAgainAsync(team));
        var look = team.ForPreview();
        await (await OpenAgainAsync(look)).DisposeAsync();
        var stillRefused = await Assert.ThrowsAsync<StoreException>(() => OpenAgainAsync(team)); // the preview kept nothing
        await using var sealedStore = await OpenAgainAsync(team.ForApproval(look.Found!));
        await using var replica = await OpenAgainAsync(team);

        Assert.Equal(RowCodec.UnsealedCode, refused.Code);
        Assert.Contains("latchkey store seal", refused.Message, StringComparison.Ordinal);
        Assert.Equal(RowCodec.UnsealedCode, stillRefused.Code);
        var found = look.Found!;
        Assert.Equal(["a", "a"], found.Credentials.Select(c => c.Name));
        Assert.Equal([false, true], found.Credentials.Select(c => c.Saved));
        Assert.Equal("https://mcp.example.com", found.Credentials[0].Metadata!.Upstream);
        Assert.Equal(["a"], Assert.Single(found.Keys).Allows);
        var record = (await replica.GetAsync("a", default))!;
        Assert.Equal(CredentialState.Ok, record.State);
        Assert.Equal("at-2", record.Secrets.AccessToken);
        Assert.Null(record.LastUpstreamFailure); // not shown for approval, so not sealed: dropped
        Assert.True(Assert.Single(await replica.GetHistoryAsync("a", default)).Readable);
        Assert.Equal(ClientKeyStatus.Valid, (await ((IClientKeyStore)replica).VerifyKeyAsync(value, default)).Status);
        var audit = Assert.Single(await ((ILatchkeyStore)replica).QueryAsync(new Latchkey.Audit.AuditQuery(), default));
        Assert.Equal(RowCodec.SealAuditRoute, audit.Route);
        Assert.Equal("store_sealed", audit.Reason);
    }

    [Fact]
    public async Task Seal_StoreChangedAfterItWasShown_RefusedAndNothingSealed()
    {
        await Store.CreateAsync(ApiKey("a"), default);
        await Keys.CreateKeyAsync("agent", ["a"], null, default);
        await TurnBackBeforeSealsAsync(keepMarker: false);
        ForgetSealRecord();
        var look = StoreSealing.ForSharedKey(Ledger).ForPreview();
        await (await OpenAgainAsync(look)).DisposeAsync();

        await ExecuteSqlAsync("UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'agent'"); // between the look and the yes

        var ex = await Assert.ThrowsAsync<StoreException>(() => OpenAgainAsync(StoreSealing.ForSharedKey(Ledger).ForApproval(look.Found!)));
        Assert.Equal(RowCodec.ChangedCode, ex.Code);
        Assert.Contains("Nothing was sealed", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<Exception>(() => ExecuteSqlAsync("UPDATE client_key SET row_mac = NULL"));
    }

    [Fact]
    public async Task Open_NewStoreWithASharedKey_SealedFromItsFirstRowWithoutTheCommand()
    {
        await Store.CreateAsync(ApiKey("a", "sk-new"), default); // the store under test was created new

        await using var replica = await OpenAgainAsync(StoreSealing.ForSharedKey(null));

        Assert.Equal("sk-new", (await replica.GetAsync("a", default))!.Secrets.ApiKey);
    }
}
