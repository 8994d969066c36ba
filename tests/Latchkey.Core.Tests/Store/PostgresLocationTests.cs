using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>Parsing PostgreSQL URLs and connection strings, and keeping their passwords out of sight.</summary>
public sealed class PostgresLocationTests
{
    [Fact]
    public void Parse_FullUrl_EverySettingCarried()
    {
        var location = PostgresLocation.Parse("postgresql://team%40corp:p%40ss@db.example:6543/latch%20key?sslmode=verify-full&application_name=gw&connect_timeout=7");

        var b = location.Builder;
        Assert.Equal("team@corp", b.Username);
        Assert.Equal("p@ss", b.Password);
        Assert.Equal("db.example", b.Host);
        Assert.Equal(6543, b.Port);
        Assert.Equal("latch key", b.Database);
        Assert.Equal(Npgsql.SslMode.VerifyFull, b.SslMode);
        Assert.Equal("gw", b.ApplicationName);
        Assert.Equal(7, b.Timeout);
        Assert.Equal("postgresql://team%40corp@db.example:6543/latch%20key", location.ToString());
    }

    [Fact]
    public void Parse_UnixSocketFolder_HostFromQuery()
    {
        var location = PostgresLocation.Parse("postgresql:///latchkey?host=/run/postgresql&port=5433");

        Assert.Equal("/run/postgresql", location.Builder.Host);
        Assert.Equal(5433, location.Builder.Port);
        Assert.Equal("postgresql:///latchkey?host=/run/postgresql&port=5433", location.ToString());
    }

    [Fact]
    public void Parse_Ipv6Host_PortSplitOff()
    {
        var location = PostgresLocation.Parse("postgres://lk@[::1]:5433/latchkey");

        Assert.Equal("::1", location.Builder.Host);
        Assert.Equal(5433, location.Builder.Port);
    }

    [Fact]
    public void Parse_PasswordWithAtSign_UserInfoEndsAtLastAt()
    {
        var location = PostgresLocation.Parse("postgresql://lk:a@b@db.example/latchkey");

        Assert.Equal("a@b", location.Builder.Password);
        Assert.Equal("db.example", location.Builder.Host);
        Assert.DoesNotContain("a@b", location.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("postgresql://lk:hunter2@db/x", "postgresql://lk:***@db/x")]
    [InlineData("postgresql://lk:hun@ter2@db/x", "postgresql://lk:***@db/x")]
    [InlineData("postgresql://lk@db/x?sslmode=require&password=hunter2", "postgresql://lk@db/x?sslmode=require&password=***")]
    [InlineData("Host=db;Password=hunter2;Database=x", "Host=db;Password=***;Database=x")]
    [InlineData("Host=db; pwd = 'hunter2;x'", "Host=db; pwd = ***")]
    [InlineData("postgresql://lk@db/x", "postgresql://lk@db/x")]
    public void Mask_Passwords_Replaced(string spec, string expected)
    {
        Assert.Equal(expected, PostgresLocation.Mask(spec));
    }
}
