using Latchkey.Store;

namespace Latchkey.Tests.Store;

public sealed class StoreHomeTests
{
    private static Func<string, string?> Env(params (string Key, string Value)[] values) =>
        key => values.FirstOrDefault(v => v.Key == key).Value;

    /// <summary>
    /// The race is between file-system calls (see for a key, write one, put it in place), so threads released
    /// together hit it far more often than process start-up jitter would; 200 fresh homes, 8 creators each.
    /// It failed on File.Move(overwrite: false), which .NET implements as rename(2) when the name looks free.
    /// </summary>
    [Fact]
    public void LoadOrCreateMasterKey_EightCreatorsOnEachOf200FreshHomes_AllGetTheKeyOnDisk()
    {
        for (var round = 0; round < 200; round++)
        {
            using var temp = new TempHome();
            Directory.CreateDirectory(temp.Path, StoreHome.FolderMode);
            using var start = new Barrier(8);
            var keys = new byte[8][];
            var threads = Enumerable.Range(0, 8).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                keys[i] = temp.Home.LoadOrCreateMasterKey();
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());

            var onDisk = File.ReadAllBytes(temp.Home.KeyFilePath);
            Assert.All(keys, k => Assert.Equal(onDisk, k));
            Assert.Empty(Directory.GetFiles(temp.Path, "master.key.tmp-*"));
        }
    }

    [Fact]
    public void Resolve_OptionGiven_WinsOverEnvironment()
    {
        var home = StoreHome.Resolve("/opt/lk", Env(("LATCHKEY_HOME", "/env/lk"), ("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/u")));

        Assert.Equal("/opt/lk", home.Path);
    }

    [Fact]
    public void Resolve_LatchkeyHomeSet_WinsOverXdg()
    {
        var home = StoreHome.Resolve(null, Env(("LATCHKEY_HOME", "/env/lk"), ("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/u")));

        Assert.Equal("/env/lk", home.Path);
    }

    [Fact]
    public void Resolve_XdgDataHomeSet_UsesLatchkeyBelowIt()
    {
        var home = StoreHome.Resolve(null, Env(("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/u")));

        Assert.Equal("/xdg/latchkey", home.Path);
    }

    [Fact]
    public void Resolve_RelativeXdgDataHome_IgnoredAsTheSpecSays()
    {
        var home = StoreHome.Resolve(null, Env(("XDG_DATA_HOME", "relative"), ("HOME", "/home/u")));

        Assert.Equal("/home/u/.local/share/latchkey", home.Path);
    }

    [Fact]
    public void Resolve_NothingSet_DefaultsUnderHomeWithNoVersionInPath()
    {
        var home = StoreHome.Resolve(null, Env(("HOME", "/home/u")));

        Assert.Equal("/home/u/.local/share/latchkey", home.Path);
        Assert.Equal("/home/u/.local/share/latchkey/latchkey.db", home.DatabasePath);
    }
}
