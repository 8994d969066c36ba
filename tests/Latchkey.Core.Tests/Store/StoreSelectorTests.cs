using System.Security.Cryptography;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>Choosing the backend from <c>--store</c> and <c>LATCHKEY_STORE</c>, and the shared key.</summary>
public sealed class StoreSelectorTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private static Func<string, string?> Env(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sqlite")]
    [InlineData("SQLite")]
    public void Choose_NothingOrSqlite_Sqlite(string? option)
    {
        Assert.Equal("sqlite", StoreSelector.Choose(option, Env()).Backend);
    }

    [Theory]
    [InlineData("postgresql://lk@db.example:5433/latchkey")]
    [InlineData("postgres://lk@db.example:5433/latchkey")]
    [InlineData("Host=db.example;Port=5433;Database=latchkey;Username=lk")]
    public void Choose_PostgresSpellings_SameLocation(string option)
    {
        var choice = StoreSelector.Choose(option, Env());

        Assert.Equal("postgresql", choice.Backend);
        Assert.Equal("postgresql://lk@db.example:5433/latchkey", choice.Postgres!.ToString());
    }

    [Fact]
    public void Choose_OnlyEnvironment_UsesLatchkeyStore()
    {
        var choice = StoreSelector.Choose(null, Env(("LATCHKEY_STORE", "postgresql://lk:secret-pw@db.example/latchkey")));

        Assert.Equal("postgresql", choice.Backend);
        Assert.True(choice.Postgres!.HasPassword);
        Assert.DoesNotContain("secret-pw", choice.Postgres.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_OptionAndEnvironment_OptionWins()
    {
        Assert.Equal("sqlite", StoreSelector.Choose("sqlite", Env(("LATCHKEY_STORE", "postgresql://lk@db.example/latchkey"))).Backend);
    }

    [Theory]
    [InlineData("mysql://root:hunter2@db/latchkey")]
    [InlineData("redis")]
    [InlineData("/var/lib/latchkey.db")]
    public void Choose_UnknownBackend_RefusedWithValidChoicesAndNoPassword(string option)
    {
        var ex = Assert.Throws<StoreException>(() => StoreSelector.Choose(option, Env()));

        Assert.Equal("unknown_store", ex.Code);
        Assert.Contains("Valid choices: sqlite", ex.Message, StringComparison.Ordinal);
        Assert.Contains("postgresql://", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("postgresql://lk:hunter2@db.example/latchkey")]
    [InlineData("postgresql://lk@db.example/latchkey?password=hunter2")]
    [InlineData("Host=db.example;Database=latchkey;Username=lk;Password=hunter2")]
    public void Choose_PasswordOnCommandLine_RefusedWithoutRepeatingIt(string option)
    {
        var ex = Assert.Throws<StoreException>(() => StoreSelector.Choose(option, Env()));

        Assert.Equal("password_in_arguments", ex.Code);
        Assert.Contains("PGPASSWORD", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("postgresql://lk:hunter2@db.example:99999/latchkey")]
    [InlineData("postgresql://lk:hunter2@db.example/latchkey?sslmode=sometimes")]
    [InlineData("postgresql://lk:hunter2@db.example/latchkey?colour=blue")]
    [InlineData("Host=db.example;Password=hunter2;Colour=blue")]
    [InlineData("postgresql://lk:hunter2@/latchkey")]
    public void Choose_MalformedPostgresLocation_RefusedWithoutPassword(string spec)
    {
        var ex = Assert.Throws<StoreException>(() => StoreSelector.Choose(null, Env(("LATCHKEY_STORE", spec))));

        Assert.Equal("store_invalid", ex.Code);
        Assert.DoesNotContain("hunter2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadSharedKey_KeyFileVariableMissingFile_RefusedNeverCreated()
    {
        var path = Path.Combine(_home.Root, "shared.key");

        var ex = Assert.Throws<StoreException>(() => StoreSelector.LoadSharedKey(_home.Home, Env(("LATCHKEY_KEY_FILE", path))));

        Assert.Equal("key_missing", ex.Code);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void LoadSharedKey_KeyFileOrFolder_ReadsTheSameKey()
    {
        var folder = Path.Combine(_home.Root, "keys");
        Directory.CreateDirectory(folder);
        var key = RandomNumberGenerator.GetBytes(32);
        var path = Path.Combine(folder, "master.key");
        File.WriteAllBytes(path, key);
        File.SetUnixFileMode(path, StoreHome.FileMode);

        Assert.Equal(key, StoreSelector.LoadSharedKey(_home.Home, Env(("LATCHKEY_KEY_FILE", path))));
        Assert.Equal(key, StoreSelector.LoadSharedKey(_home.Home, Env(("LATCHKEY_KEY_FILE", folder))));
        Assert.False(Directory.Exists(_home.Path), "the home folder is not needed when the key file is given");
    }

    [Fact]
    public void LoadSharedKey_KeyFileReadableByOthers_Refused()
    {
        var path = Path.Combine(_home.Root, "shared.key");
        File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(32));
        File.SetUnixFileMode(path, StoreHome.FileMode | UnixFileMode.OtherRead);

        var ex = Assert.Throws<StoreException>(() => StoreSelector.LoadSharedKey(_home.Home, Env(("LATCHKEY_KEY_FILE", path))));

        Assert.Equal("key_permissions", ex.Code);
    }

    [Fact]
    public void LoadSharedKey_NoKeyFileVariable_HomeMasterKeyCreatedOnce()
    {
        var first = StoreSelector.LoadSharedKey(_home.Home, Env());
        var second = StoreSelector.LoadSharedKey(_home.Home, Env());

        Assert.Equal(first, second);
        Assert.True(File.Exists(_home.Home.KeyFilePath));
    }
}
