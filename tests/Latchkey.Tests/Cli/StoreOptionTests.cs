using System.Diagnostics;
using System.Security.Cryptography;
using Latchkey.Store;

namespace Latchkey.Tests.Cli;

/// <summary><c>--store</c> and <c>LATCHKEY_STORE</c>, run as the real <c>latchkey</c> executable, on a real PostgreSQL.</summary>
[Collection(PostgresTests.Name)]
public sealed class StoreOptionTests(PostgresServer server) : IDisposable
{
    private const string Canary = "sk-CANARY-3a8f1d6c0e";
    private readonly TempHome _home = new();
    private readonly TempHome _otherHome = new();

    public void Dispose()
    {
        _home.Dispose();
        _otherHome.Dispose();
    }

    private static async Task<Processes.Result> Run(string home, Dictionary<string, string> environment, string? stdin, params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, home, args);
        info.Environment.Remove(StoreSelector.StoreVariable);
        info.Environment.Remove(StoreSelector.KeyFileVariable);
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return await Processes.Run(info, stdin);
    }

    private string KeyFile(string name)
    {
        var path = Path.Combine(_home.Root, name);
        File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(32));
        File.SetUnixFileMode(path, StoreHome.FileMode);
        return path;
    }

    [Fact]
    public async Task Store_UnknownChoice_FailsListingValidChoices()
    {
        var result = await Run(_home.Path, [], null, "--store", "mongodb://root:hunter2@db/x", "list");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Valid choices: sqlite", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("postgresql://", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_PasswordInArgument_RefusedWithoutEchoingIt()
    {
        var result = await Run(_home.Path, [], null, "list", "--store", "postgresql://lk:hunter2@127.0.0.1/x");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("PGPASSWORD", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", result.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_PostgresFromEnvironment_TwoReplicasShareCredentialsAndAnotherKeyIsRefused()
    {
        var url = await server.CreateDatabaseAsync();
        var shared = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url, [StoreSelector.KeyFileVariable] = KeyFile("shared.key") };

        var added = await Run(_home.Path, shared, Canary + "\n", "add", "api", "--upstream", "https://api.example.com");
        var token = await Run(_otherHome.Path, shared, null, "token", "api");
        var list = await Run(_otherHome.Path, shared, null, "list");
        var wrongKey = await Run(_otherHome.Path, new() { [StoreSelector.StoreVariable] = url, [StoreSelector.KeyFileVariable] = KeyFile("other.key") }, null, "list");
        var sqlite = await Run(_home.Path, [], null, "list");

        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Equal(Canary + "\n", token.Stdout);
        Assert.Contains("api", list.Stdout, StringComparison.Ordinal);
        Assert.NotEqual(0, wrongKey.ExitCode);
        Assert.Contains("LATCHKEY_KEY_FILE", wrongKey.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("api", sqlite.Stdout, StringComparison.Ordinal); // the home's own SQLite store is another store
        Assert.False(File.Exists(Path.Combine(_otherHome.Path, "latchkey.db")));
        Assert.DoesNotContain("CANARY", added.All + list.All + wrongKey.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_PostgresUrlOnCommandLine_UsedWithoutPassword()
    {
        var url = await server.CreateDatabaseAsync();
        var key = new Dictionary<string, string> { [StoreSelector.KeyFileVariable] = KeyFile("shared.key") };

        var added = await Run(_home.Path, key, Canary + "\n", "--store", url, "add", "api", "--upstream", "https://api.example.com");
        var token = await Run(_otherHome.Path, key, null, "token", "api", "--store", url);

        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Equal(Canary + "\n", token.Stdout);
    }

    [Fact]
    public async Task Serve_StoreOnPostgres_HealthReportsPostgresql()
    {
        var url = await server.CreateDatabaseAsync();
        var info = Processes.StartInfo(Processes.LatchkeyExe, _home.Path, ["serve", "--listen", "127.0.0.1:0", "--no-socket", "--store", url]);
        info.Environment[StoreSelector.KeyFileVariable] = KeyFile("shared.key");
        using var process = Process.Start(info)!;
        try
        {
            process.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            string? line;
            do
            {
                line = await process.StandardOutput.ReadLineAsync(timeout.Token);
            }
            while (line is not null && !line.StartsWith("Latchkey gateway on ", StringComparison.Ordinal));

            Assert.NotNull(line);
            var gateway = line["Latchkey gateway on ".Length..].Split(' ')[0];
            using var http = new HttpClient();
            var health = await http.GetStringAsync(new Uri(gateway + "/healthz"), timeout.Token);

            Assert.Contains("\"postgresql\"", health, StringComparison.Ordinal);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Doctor_PostgresStore_ChecksWithoutMigratingAndFindsAnotherKey()
    {
        var url = await server.CreateDatabaseAsync();
        var shared = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url, [StoreSelector.KeyFileVariable] = KeyFile("shared.key") };

        var beforeMigration = await Run(_home.Path, shared, null, "doctor", "--json");
        var added = await Run(_home.Path, shared, Canary + "\n", "add", "api", "--upstream", "https://api.example.com");
        var healthy = await Run(_home.Path, shared, null, "doctor", "--json");
        var wrongKey = await Run(_home.Path, new() { [StoreSelector.StoreVariable] = url, [StoreSelector.KeyFileVariable] = KeyFile("other.key") }, null, "doctor", "--json");

        Assert.NotEqual(0, beforeMigration.ExitCode);
        Assert.Contains("schema 0", beforeMigration.Stdout, StringComparison.Ordinal);
        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.True(healthy.ExitCode == 0, healthy.ToString());
        Assert.Contains("PostgreSQL at", healthy.Stdout, StringComparison.Ordinal);
        Assert.NotEqual(0, wrongKey.ExitCode);
        Assert.Contains("LATCHKEY_KEY_FILE", wrongKey.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("CANARY", healthy.All + wrongKey.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_SeveralProcessesStartOnAFreshDatabase_MigrateOnceAndAllSucceed()
    {
        var url = await server.CreateDatabaseAsync();
        var shared = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url, [StoreSelector.KeyFileVariable] = KeyFile("shared.key") };

        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Run(_home.Path, shared, null, "list")));

        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.ToString()));
        await using var connection = new Npgsql.NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var count = new Npgsql.NpgsqlCommand("SELECT count(*) FROM schema_version", connection);
        Assert.Equal((long)PostgresCredentialStore.SchemaVersion, (long)(await count.ExecuteScalarAsync())!);
    }
}
