using Latchkey.Store;

namespace Latchkey.Tests.Store;

public sealed class SealLedgerTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private SealLedger Ledger()
    {
        Directory.CreateDirectory(_home.Path, StoreHome.FolderMode);
        return SealLedger.In(_home.Home);
    }

    [Fact]
    public void Record_FirstStore_FolderIs0700AndFile0600AndFindReadsItBack()
    {
        var ledger = Ledger();
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);

        ledger.Record("postgresql://db:5432/latchkey", "0123456789abcdef", at);

        Assert.Equal(StoreHome.FolderMode, File.GetUnixFileMode(ledger.Folder));
        var file = Assert.Single(Directory.GetFiles(ledger.Folder));
        Assert.Equal(StoreHome.FileMode, File.GetUnixFileMode(file));
        Assert.Equal(new SealLedgerEntry("postgresql://db:5432/latchkey", "0123456789abcdef", at), ledger.Find("postgresql://db:5432/latchkey"));
        Assert.Null(ledger.Find("postgresql://db:5432/other"));
    }

    [Fact]
    public void Find_FileThereButUnreadableContent_StillRecordsTheStoreAsSealed()
    {
        var ledger = Ledger();
        ledger.Record(StoreSealing.SqliteIdentity, "k", DateTimeOffset.UnixEpoch);
        File.WriteAllText(ledger.PathFor(StoreSealing.SqliteIdentity), "{ not json");

        Assert.Equal(new SealLedgerEntry(StoreSealing.SqliteIdentity, null, null), ledger.Find(StoreSealing.SqliteIdentity));
    }

    [Fact]
    public void Record_HomeMissing_ThrowsAndCreatesNothing()
    {
        var ledger = SealLedger.In(_home.Home);

        Assert.ThrowsAny<IOException>(() => ledger.Record(StoreSealing.SqliteIdentity, "k", DateTimeOffset.UnixEpoch));
        Assert.False(Directory.Exists(_home.Path));
    }

    [Fact]
    public async Task Record_ManyThreadsAtOnce_AllSucceedAndOneFileRemains()
    {
        var ledger = Ledger();

        await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() => ledger.Record(StoreSealing.SqliteIdentity, $"k{i % 2}", DateTimeOffset.UnixEpoch))));

        Assert.Single(Directory.GetFiles(ledger.Folder));
        Assert.NotNull(ledger.Find(StoreSealing.SqliteIdentity)!.KeyId);
    }

    [Fact]
    public void Sealing_RememberWhereTheHomeCannotHoldTheRecord_FailsOnlyWhenTheKeyIsTheHomesOwn()
    {
        var ledger = SealLedger.In(_home.Home); // the home does not exist

        StoreSealing.ForSharedKey(ledger).Remember(StoreSealing.SqliteIdentity, "k", DateTimeOffset.UnixEpoch);
        var ex = Assert.Throws<StoreException>(() => StoreSealing.ForHomeKey(ledger).Remember(StoreSealing.SqliteIdentity, "k", DateTimeOffset.UnixEpoch));

        Assert.Equal("home_unwritable", ex.Code);
    }

    [Fact]
    public void IdentityOf_SameDatabaseAnySpellingOrUser_SameIdentityWithoutUserOrPassword()
    {
        var url = StoreSealing.IdentityOf(PostgresLocation.Parse("postgresql://alice:s3cret@DB.Example:5432/latchkey"));
        var keywords = StoreSealing.IdentityOf(PostgresLocation.Parse("Host=db.example;Database=latchkey;Username=bob"));

        Assert.Equal("postgresql://db.example:5432/latchkey", url);
        Assert.Equal(url, keywords);
    }
}
