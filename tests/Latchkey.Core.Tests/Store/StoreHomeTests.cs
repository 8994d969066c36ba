using Latchkey.Store;

namespace Latchkey.Tests.Store;

public sealed class StoreHomeTests
{
    private static Func<string, string?> Env(params (string Key, string Value)[] values) =>
        key => values.FirstOrDefault(v => v.Key == key).Value;

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
