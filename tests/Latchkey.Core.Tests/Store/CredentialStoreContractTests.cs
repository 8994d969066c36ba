using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// The store contract (<see cref="ICredentialStore"/>) as tests every backend runs: derive a class that says how
/// to open a fresh store and how to open a second instance on the same storage.
/// </summary>
public abstract partial class CredentialStoreContractTests : IAsyncLifetime
{
    private ICredentialStore? _store;

    internal ICredentialStore Store => _store ?? throw new InvalidOperationException("not initialised");

    /// <summary>Opens the store under test on fresh, empty storage.</summary>
    internal abstract Task<ICredentialStore> OpenFreshAsync();

    /// <summary>Opens another instance on the same storage, as another process would.</summary>
    internal abstract Task<ICredentialStore> OpenAgainAsync();

    public async Task InitializeAsync() => _store = await OpenFreshAsync();

    public async Task DisposeAsync()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    internal static NewCredential ApiKey(string name, string secret = "sk-test-1", string upstream = "https://api.example.com") =>
        new(name, CredentialKind.ApiKey, new CredentialMetadata { Upstream = upstream }, new CredentialSecrets { ApiKey = secret });

    internal static NewCredential OAuth(string name, string refreshToken = "rt-1") =>
        new(name, CredentialKind.OAuth,
            new CredentialMetadata
            {
                Upstream = "https://mcp.example.com",
                Issuer = "https://auth.example.com",
                Client = new ClientRegistration("client-1", "dcr", "none"),
                Resource = "https://mcp.example.com/mcp",
                ScopesRequested = ["read", "write"],
                ScopesGranted = ["read"],
                ExpiresAt = DateTimeOffset.UnixEpoch.AddYears(60),
            },
            new CredentialSecrets { AccessToken = "at-1", RefreshToken = refreshToken, ClientSecret = "cs-1" });

    [Fact]
    public async Task CreateAsync_NewName_ReadsBackAtVersionOne()
    {
        var created = await Store.CreateAsync(OAuth("mcp"), default);

        Assert.Equal(WriteOutcome.Written, created.Outcome);
        var read = await Store.GetAsync("mcp", default);
        Assert.NotNull(read);
        Assert.Equal(1, read.Version);
        Assert.Equal(CredentialState.Ok, read.State);
        Assert.Equal(CredentialKind.OAuth, read.Kind);
        Assert.Equal("rt-1", read.Secrets.RefreshToken);
        Assert.Equal("cs-1", read.Secrets.ClientSecret);
        Assert.Equal(["read", "write"], read.Metadata.ScopesRequested);
        Assert.Equal("client-1", read.Metadata.Client!.ClientId);
        Assert.NotNull(read.RefreshTokenFingerprint);
        Assert.Equal(created.Record!.Id, read.Id);
    }

    [Fact]
    public async Task CreateAsync_NameTaken_AlreadyExistsAndNothingChanged()
    {
        await Store.CreateAsync(ApiKey("a", "first"), default);

        var second = await Store.CreateAsync(ApiKey("a", "second"), default);

        Assert.Equal(WriteOutcome.AlreadyExists, second.Outcome);
        Assert.Equal("first", (await Store.GetAsync("a", default))!.Secrets.ApiKey);
    }

    [Fact]
    public async Task GetAsync_UnknownName_ReturnsNull()
    {
        Assert.Null(await Store.GetAsync("nobody", default));
    }

    [Fact]
    public async Task UpdateAsync_PartialPatch_MergesAndKeepsOtherFields()
    {
        await Store.CreateAsync(OAuth("mcp"), default);

        var result = await Store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-2" }, WriteCondition.None, default);

        Assert.Equal(WriteOutcome.Written, result.Outcome);
        var read = (await Store.GetAsync("mcp", default))!;
        Assert.Equal(2, read.Version);
        Assert.Equal("at-2", read.Secrets.AccessToken);
        Assert.Equal("rt-1", read.Secrets.RefreshToken);
        Assert.Equal("cs-1", read.Secrets.ClientSecret);
        Assert.Equal(["read", "write"], read.Metadata.ScopesRequested);
        Assert.Equal(["read"], read.Metadata.ScopesGranted);
        Assert.Equal("https://auth.example.com", read.Metadata.Issuer);
    }

    [Fact]
    public async Task UpdateAsync_EmptyRefreshTokenAndScopes_KeepsStoredOnes()
    {
        await Store.CreateAsync(OAuth("mcp"), default);
        var before = (await Store.GetAsync("mcp", default))!;

        await Store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-2", RefreshToken = "", ScopesGranted = [] }, WriteCondition.None, default);

        var after = (await Store.GetAsync("mcp", default))!;
        Assert.Equal("rt-1", after.Secrets.RefreshToken);
        Assert.Equal(before.RefreshTokenFingerprint, after.RefreshTokenFingerprint);
        Assert.Equal(["read"], after.Metadata.ScopesGranted);
    }

    [Fact]
    public async Task UpdateAsync_StaleVersion_ConditionFailedAndNothingChanged()
    {
        await Store.CreateAsync(ApiKey("a", "v1"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "v2" }, WriteCondition.Version(1), default);

        var stale = await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "v3" }, WriteCondition.Version(1), default);

        Assert.Equal(WriteOutcome.ConditionFailed, stale.Outcome);
        Assert.Equal(2, stale.Record!.Version);
        var read = (await Store.GetAsync("a", default))!;
        Assert.Equal("v2", read.Secrets.ApiKey);
        Assert.Equal(2, read.Version);
    }

    [Fact]
    public async Task UpdateAsync_RefreshTokenFence_OnlyTheHolderOfTheCurrentTokenWins()
    {
        await Store.CreateAsync(OAuth("mcp", "rt-1"), default);
        var fp1 = (await Store.GetAsync("mcp", default))!.RefreshTokenFingerprint;

        var winner = await Store.UpdateAsync("mcp", new CredentialPatch { AccessToken = "at-2", RefreshToken = "rt-2" }, WriteCondition.RefreshToken(fp1), default);
        var loser = await Store.UpdateAsync("mcp", new CredentialPatch { State = CredentialState.NeedsAuth, Reason = new StateReason("invalid_grant", "spent", null, DateTimeOffset.UnixEpoch) }, WriteCondition.RefreshToken(fp1), default);

        Assert.Equal(WriteOutcome.Written, winner.Outcome);
        Assert.NotEqual(fp1, winner.Record!.RefreshTokenFingerprint);
        Assert.Equal(WriteOutcome.ConditionFailed, loser.Outcome);
        var read = (await Store.GetAsync("mcp", default))!;
        Assert.Equal(CredentialState.Ok, read.State);
        Assert.Equal("rt-2", read.Secrets.RefreshToken);
    }

    [Fact]
    public async Task UpdateAsync_FenceOnNoRefreshToken_MatchesOnlyWhenNoneIsStored()
    {
        await Store.CreateAsync(ApiKey("a"), default);

        var result = await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "k2" }, WriteCondition.RefreshToken(null), default);

        Assert.Equal(WriteOutcome.Written, result.Outcome);
    }

    [Fact]
    public async Task UpdateAsync_StateNeedsAuth_RecordsReasonAndOkClearsIt()
    {
        await Store.CreateAsync(OAuth("mcp"), default);
        var reason = new StateReason("invalid_grant", "The server said the grant is revoked.", "latchkey login mcp", DateTimeOffset.UnixEpoch);

        await Store.UpdateAsync("mcp", new CredentialPatch { State = CredentialState.NeedsAuth, Reason = reason }, WriteCondition.None, default);
        var broken = (await Store.GetAsync("mcp", default))!;
        await Store.UpdateAsync("mcp", new CredentialPatch { State = CredentialState.Ok }, WriteCondition.None, default);
        var fixedRecord = (await Store.GetAsync("mcp", default))!;

        Assert.Equal(CredentialState.NeedsAuth, broken.State);
        Assert.Equal(reason, broken.Reason);
        Assert.Equal(CredentialState.Ok, fixedRecord.State);
        Assert.Null(fixedRecord.Reason);
    }

    [Fact]
    public async Task UpdateAsync_UnknownName_NotFound()
    {
        var result = await Store.UpdateAsync("nobody", new CredentialPatch { ApiKey = "x" }, WriteCondition.None, default);

        Assert.Equal(WriteOutcome.NotFound, result.Outcome);
    }

    [Fact]
    public async Task GetHistoryAsync_ManyWrites_KeepsAtLeastTheLastFiveVersions()
    {
        await Store.CreateAsync(ApiKey("a", "v1"), default);
        for (var i = 2; i <= 15; i++)
        {
            await Store.UpdateAsync("a", new CredentialPatch { ApiKey = $"v{i}" }, WriteCondition.None, default);
        }

        var history = await Store.GetHistoryAsync("a", default);

        Assert.True(Store.HistoryDepth >= 5);
        Assert.Equal(Store.HistoryDepth, history.Count);
        Assert.Equal(Enumerable.Range(15 - Store.HistoryDepth, Store.HistoryDepth).Reverse().Select(v => (long)v), history.Select(h => h.Version));
        Assert.All(history, h => Assert.True(h.Readable));
    }

    [Fact]
    public async Task RestoreAsync_SavedVersion_BecomesCurrentAsNewVersion()
    {
        await Store.CreateAsync(ApiKey("a", "good"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "bad", Metadata = m => m with { Upstream = "https://other.example.com" } }, WriteCondition.None, default);

        var restored = await Store.RestoreAsync("a", 1, WriteCondition.Version(2), default);

        Assert.Equal(WriteOutcome.Written, restored.Outcome);
        var read = (await Store.GetAsync("a", default))!;
        Assert.Equal(3, read.Version);
        Assert.Equal("good", read.Secrets.ApiKey);
        Assert.Equal("https://api.example.com", read.Metadata.Upstream);
        Assert.Contains(await Store.GetHistoryAsync("a", default), h => h.Version == 2);
    }

    [Fact]
    public async Task RestoreAsync_MissingVersion_NotFoundAndNothingChanged()
    {
        await Store.CreateAsync(ApiKey("a", "v1"), default);

        var result = await Store.RestoreAsync("a", 7, WriteCondition.None, default);

        Assert.Equal(WriteOutcome.NotFound, result.Outcome);
        Assert.Equal(1, (await Store.GetAsync("a", default))!.Version);
    }

    [Fact]
    public async Task RemoveAsync_Existing_DeletesRecordAndHistoryOnly()
    {
        await Store.CreateAsync(ApiKey("a"), default);
        await Store.CreateAsync(ApiKey("b", "b-secret"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "k2" }, WriteCondition.None, default);

        Assert.True(await Store.RemoveAsync("a", default));
        Assert.False(await Store.RemoveAsync("a", default));

        Assert.Null(await Store.GetAsync("a", default));
        Assert.Empty(await Store.GetHistoryAsync("a", default));
        Assert.Equal("b-secret", (await Store.GetAsync("b", default))!.Secrets.ApiKey);
    }

    [Fact]
    public async Task RemoveAsync_ThenCreateSameName_StartsFreshWithoutOldHistory()
    {
        await Store.CreateAsync(ApiKey("a", "old"), default);
        await Store.UpdateAsync("a", new CredentialPatch { ApiKey = "old2" }, WriteCondition.None, default);
        await Store.RemoveAsync("a", default);

        await Store.CreateAsync(ApiKey("a", "new"), default);

        Assert.Equal(1, (await Store.GetAsync("a", default))!.Version);
        Assert.Empty(await Store.GetHistoryAsync("a", default));
    }

    [Fact]
    public async Task ListAsync_SeveralRecords_OrderedByName()
    {
        foreach (var name in new[] { "zeta", "alpha", "mid" })
        {
            await Store.CreateAsync(ApiKey(name), default);
        }

        var names = (await Store.ListAsync(default)).Select(r => r.Name);

        Assert.Equal(["alpha", "mid", "zeta"], names);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2013)]
    [InlineData(2014)]
    [InlineData(2560)]
    [InlineData(2561)]
    [InlineData(4096)]
    [InlineData(65536)]
    public async Task CreateAsync_PayloadSizes_RoundTripExactly(int size)
    {
        // Sizes around the item limits of OS secret stores (2013 and 2560 bytes, 4096 for a hex line), where other tools
        // truncate silently; with newlines, NUL and non-ASCII.
        var alphabet = "ab\n\0é漢🔑\"\\";
        var payload = string.Concat(Enumerable.Range(0, size).Select(i => alphabet[i % alphabet.Length]))[..size];

        await Store.CreateAsync(new NewCredential("big", CredentialKind.OAuth, new CredentialMetadata(), new CredentialSecrets { AccessToken = payload, IdToken = payload }), default);

        var read = (await Store.GetAsync("big", default))!;
        Assert.Equal(payload, read.Secrets.AccessToken);
        Assert.Equal(payload, read.Secrets.IdToken);
    }

    [Fact]
    public async Task OpenAgain_SecondInstance_SeesCommittedWrites()
    {
        await Store.CreateAsync(OAuth("mcp"), default);
        await using var other = await OpenAgainAsync();

        await other.UpdateAsync("mcp", new CredentialPatch { RefreshToken = "rt-2" }, WriteCondition.None, default);

        var read = (await Store.GetAsync("mcp", default))!;
        Assert.Equal("rt-2", read.Secrets.RefreshToken);
        Assert.Equal(2, read.Version);
    }

    [Fact]
    public async Task UpdateAsync_ConcurrentCompareAndSwapFromTwoInstances_NoLostUpdate()
    {
        await Store.CreateAsync(new NewCredential("counter", CredentialKind.ApiKey, new CredentialMetadata { Upstream = "https://x.example/0" }, new CredentialSecrets { ApiKey = "0" }), default);
        await using var other = await OpenAgainAsync();
        var successes = 0;

        async Task Worker(ICredentialStore s)
        {
            for (var i = 0; i < 40; i++)
            {
                var current = (await s.GetAsync("counter", default))!;
                var next = int.Parse(current.Secrets.ApiKey!) + 1;
                var result = await s.UpdateAsync("counter", new CredentialPatch { ApiKey = next.ToString() }, WriteCondition.Version(current.Version), default);
                if (result.Succeeded)
                {
                    Interlocked.Increment(ref successes);
                }
            }
        }

        await Task.WhenAll(Task.Run(() => Worker(Store)), Task.Run(() => Worker(other)));

        var final = (await Store.GetAsync("counter", default))!;
        Assert.Equal(successes, int.Parse(final.Secrets.ApiKey!));
        Assert.Equal(successes + 1, final.Version);
    }

    [Fact]
    public void CredentialSecrets_ToString_NeverShowsValues()
    {
        var secrets = new CredentialSecrets { ApiKey = "sk-canary", AccessToken = "at-canary" };
        var record = new CredentialRecord
        {
            Name = "a", Id = "id", Kind = CredentialKind.ApiKey, Version = 1, State = CredentialState.Ok,
            Metadata = new CredentialMetadata(), Secrets = secrets, CreatedAt = default, UpdatedAt = default,
        };

        Assert.DoesNotContain("canary", secrets.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("canary", record.ToString(), StringComparison.Ordinal);
    }
}
