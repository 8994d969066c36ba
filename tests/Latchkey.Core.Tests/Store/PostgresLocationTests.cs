using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.Store;
using Npgsql;

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

    [Theory]
    [InlineData("pa#ss")]
    [InlineData("pa/ss")]
    [InlineData("pa?ss")]
    [InlineData("p@/?#:&=%zz")]
    public void Parse_UnencodedPasswordWithUrlDelimiters_WholePasswordParsedAndNeverShown(string password)
    {
        var spec = $"postgresql://lk:{password}@db.example:5433/latchkey?sslmode=verify-full";

        var location = PostgresLocation.Parse(spec);

        Assert.Equal(password, location.Builder.Password);
        Assert.Equal("db.example", location.Builder.Host);
        Assert.Equal(5433, location.Builder.Port);
        Assert.Equal("latchkey", location.Builder.Database);
        Assert.Equal("postgresql://lk@db.example:5433/latchkey", location.ToString());
        Assert.Equal("postgresql://lk:***@db.example:5433/latchkey?sslmode=verify-full", PostgresLocation.Mask(spec));
    }

    [Theory]
    [InlineData("postgresql://lk:Qx7#Jv9@db.example:notaport/x")]
    [InlineData("postgresql://lk:Qx7/Jv9@db.example/x?nope=1")]
    [InlineData("postgresql://lk:Qx7?Jv9@[::1/x")]
    [InlineData("postgresql://lk@db.example/x?password=Qx7&Jv9&sslmode=verify-full")]
    [InlineData("postgresql://lk@db.example:notaport/x?password=Qx7#Jv9")]
    [InlineData("postgresql://lk@db.example/x?sslmode=require&password=Qx7@Jv9")]
    [InlineData("Host=db.example;Password=Qx7;Jv9;Database=x")]
    public void Parse_BrokenSpecWithPasswordHoldingDelimiters_ErrorShowsNoPieceOfIt(string spec)
    {
        var ex = Assert.Throws<StoreException>(() => StoreSelector.Choose(null, name => name == StoreSelector.StoreVariable ? spec : null));

        Assert.Equal("store_invalid", ex.Code);
        Assert.DoesNotContain("Qx7", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Jv9", ex.Message, StringComparison.Ordinal);
        Assert.Contains("***", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Any password, in every form a PostgreSQL store can be written in (URL user info or <c>password</c> parameter,
    /// raw or percent-encoded; a keyword string, quoted as Npgsql quotes it), is masked whole: the masked text is
    /// the form with <c>***</c> in place of the password (or, where that is ambiguous, cut at the password), so no
    /// character of the password is left in it.
    /// </summary>
    [Property(MaxTest = 1000, Arbitrary = [typeof(Passwords)])]
    public bool Mask_AnyPasswordInAnyForm_NothingOfThePasswordLeft(string password)
    {
        var encoded = Uri.EscapeDataString(password);
        (string Spec, string[] Allowed)[] forms =
        [
            ($"postgresql://lk:{password}@db.example:5432/latchkey", ["postgresql://lk:***@db.example:5432/latchkey", "postgresql://lk:***"]),
            ($"postgresql://lk:{encoded}@db.example:5432/latchkey", ["postgresql://lk:***@db.example:5432/latchkey"]),
            ($"POSTGRES://lk:{password}@db.example/latchkey?sslmode=require", ["POSTGRES://lk:***@db.example/latchkey?sslmode=require", "POSTGRES://lk:***"]),
            ($"postgresql://lk@db.example/latchkey?sslmode=require&password={password}", ["postgresql://lk@db.example/latchkey?sslmode=require&password=***"]),
            ($"postgresql://lk@db.example/latchkey?password={encoded}&sslmode=require", ["postgresql://lk@db.example/latchkey?password=***"]),
            ($"postgresql://lk@db.example/latchkey?pass%77ord={encoded}", ["postgresql://lk@db.example/latchkey?pass%77ord=***"]),
            .. KeywordForms(password, "Host=db.example;Database=latchkey;", string.Empty, "Password=").Select(spec => (spec, new[] { "Host=db.example;Database=latchkey;Password=***" })),
            .. KeywordForms(password, "Host=db.example;", ";Database=latchkey", "pwd = ").Select(spec => (spec, new[] { "Host=db.example;pwd = ***;Database=latchkey" })),
            .. KeywordForms(password, "Host=db.example;Database=latchkey;", string.Empty, "SSL Password=").Select(spec => (spec, new[] { "Host=db.example;Database=latchkey;SSL Password=***" })),
            ($"postgresql://lk@db.example/latchkey?sslpassword={encoded}", ["postgresql://lk@db.example/latchkey?sslpassword=***"]),
        ];

        foreach (var (spec, allowed) in forms)
        {
            var masked = PostgresLocation.Mask(spec);
            if (!allowed.Contains(masked))
            {
                throw new InvalidOperationException($"{spec} was masked as {masked}");
            }
        }

        return true;
    }

    /// <summary>
    /// Whatever the password, no message a store specification can produce (a refusal of the specification, of a
    /// password on the command line, of an unknown backend) and no location Latchkey prints carries it.
    /// </summary>
    [Property(MaxTest = 1000, Arbitrary = [typeof(Passwords)])]
    public bool Messages_AnyPassword_NeverCarryIt(string password)
    {
        var marked = "\u00a7" + password + "\u00b6"; // § and ¶ appear in no message: any quoted piece of the password that reaches an end shows
        var encoded = Uri.EscapeDataString(marked);
        string[] specs =
        [
            $"postgresql://lk:{marked}@db.example:5432/latchkey",
            $"postgresql://lk:{marked}@db.example:notaport/latchkey",
            $"postgresql://lk:{marked}@db.example/latchkey?nope=1",
            $"postgresql://lk:{encoded}@db.example/latchkey?sslmode=nope",
            $"postgresql://lk@db.example/latchkey?sslmode=require&password={marked}",
            $"postgresql://lk@db.example/latchkey?password={marked}&nope=1",
            $"postgresql://lk@db.example:notaport/latchkey?password={encoded}",
            $"mysql://lk:{marked}@db.example/latchkey",
            .. KeywordForms(marked, "Host=db.example;Database=latchkey;", string.Empty, "Password="),
            .. KeywordForms(marked, "Host=db.example;Nope=1;", string.Empty, "Password="),
            .. KeywordForms(marked, "Host=db.example;Database=latchkey;", string.Empty, "SSL Password="),
        ];

        foreach (var spec in specs)
        {
            foreach (var (option, environment) in new[] { (spec, (string?)null), (null, spec) })
            {
                string text;
                try
                {
                    var choice = StoreSelector.Choose(option, name => name == StoreSelector.StoreVariable ? environment : null);
                    text = choice.Postgres!.ToString() + "\n" + (choice.Postgres.TransportWarning() ?? string.Empty);
                }
                catch (StoreException ex)
                {
                    text = ex.Message;
                }

                if (text.Contains('\u00a7', StringComparison.Ordinal) || text.Contains('\u00b6', StringComparison.Ordinal) || text.Contains("%C2%A7", StringComparison.Ordinal) || text.Contains("%C2%B6", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"{spec} gave: {text}");
                }
            }
        }

        return true;
    }

    [Theory]
    [InlineData("postgresql://lk@db.example/latchkey", true)]
    [InlineData("postgresql://lk@db.example/latchkey?sslmode=require", true)]
    [InlineData("postgresql://lk@10.0.0.5/latchkey?sslmode=prefer", true)]
    [InlineData("Host=db1.example,127.0.0.1;Database=latchkey;Username=lk", true)]
    [InlineData("postgresql://lk@db.example/latchkey?sslmode=verify-full", false)]
    [InlineData("postgresql://lk@db.example/latchkey?sslmode=verify-ca", false)]
    [InlineData("postgresql://lk@127.0.0.1:5432/latchkey", false)]
    [InlineData("postgresql://lk@[::1]:5432/latchkey", false)]
    [InlineData("postgresql://lk@localhost/latchkey", false)]
    [InlineData("postgresql:///latchkey?host=/run/postgresql", false)]
    public void TransportWarning_HostAndSslMode_WarnsOnlyForUnverifiedNetworkConnections(string spec, bool warns)
    {
        var warning = PostgresLocation.Parse(spec).TransportWarning();

        Assert.Equal(warns, warning is not null);
        if (warning is not null)
        {
            Assert.Contains("sslmode=verify-full", warning, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// <paramref name="password"/> as a keyword string carries it: quoted by Npgsql's own builder, as a person following
    /// its rules would write it. None for a password holding NUL, which no connection string can carry.
    /// </summary>
    private static IEnumerable<string> KeywordForms(string password, string before, string after, string keyword)
    {
        if (password.Contains('\0', StringComparison.Ordinal))
        {
            yield break;
        }

        yield return before + new NpgsqlConnectionStringBuilder { Password = password }.ConnectionString.Replace("Password=", keyword, StringComparison.Ordinal) + after;
    }

    /// <summary>Passwords of any characters, including every URL and connection-string delimiter, but never empty.</summary>
    public static class Passwords
    {
        public static Arbitrary<string> Strings() =>
            Gen.OneOf(
                    ArbMap.Default.GeneratorFor<NonEmptyString>().Select(s => s.Get),
                    Gen.Elements('@', '/', '?', '#', ':', '&', '=', ';', '%', '\'', '"', ' ', '\\', '[', ']', 'a', 'Z', '0', '\u00e9', '\n').ArrayOf().Where(a => a.Length > 0).Select(a => new string(a)))
                .ToArbitrary();
    }
}
