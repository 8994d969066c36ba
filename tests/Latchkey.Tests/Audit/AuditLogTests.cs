using System.Security.Cryptography;
using System.Text;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;
using Npgsql;

namespace Latchkey.Tests.Audit;

/// <summary>The gateway's audit log through a real <c>latchkey serve</c> and <c>latchkey audit</c>, on SQLite.</summary>
public sealed class AuditLogTests : IAsyncLifetime
{
    private readonly SimulatedUpstream _upstream = new();

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Fact]
    public async Task Serve_MixOfRequestsAndFailures_AuditHoldsExactlyWhatWasSentAndNoSecret()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        var (keyA, keyB, secrets) = await AuditTraffic.SetUpAsync(gateway, _upstream);

        var sent = await AuditTraffic.SendMixAsync(gateway, keyA, keyB);

        var entries = await AuditTraffic.WaitForEntriesAsync(gateway, sent.Count);
        AuditTraffic.AssertMatches(sent, entries);
        var onlyOther = await AuditTraffic.WaitForEntriesAsync(gateway, 1, "--credential", "other");
        Assert.Single(onlyOther);
        var table = await gateway.Cli(null, "audit", "--since", "10m");
        Assert.Contains("agent-b", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("client_key_not_allowed", table.Stdout, StringComparison.Ordinal);
        AuditTraffic.AssertNoSecrets(table.Stdout + string.Join('\n', entries.Select(e => e.GetRawText())), secrets, "'latchkey audit'");
        var database = Path.Combine(gateway.HomePath, "latchkey.db");
        var raw = Encoding.Latin1.GetString(File.ReadAllBytes(database)) + (File.Exists(database + "-wal") ? Encoding.Latin1.GetString(File.ReadAllBytes(database + "-wal")) : string.Empty);
        Assert.Contains("client_key_not_allowed", raw, StringComparison.Ordinal); // the audit rows are in these bytes
        AuditTraffic.AssertNoSecrets(raw, secrets, "the database file");
    }

    [Fact]
    public async Task Serve_CleanShutdownRightAfterRequests_NoEntryLost()
    {
        var home = new TempHome();
        try
        {
            var gateway = await GatewayProcess.StartAsync(home);
            var (keyA, keyB, _) = await AuditTraffic.SetUpAsync(gateway, _upstream);
            var sent = await AuditTraffic.SendMixAsync(gateway, keyA, keyB);
            await gateway.StopAsync(); // SIGTERM at once: the writer must drain its queue before the store closes
            await gateway.DisposeAsync();

            await using var after = await GatewayProcess.StartAsync(home);
            AuditTraffic.AssertMatches(sent, await AuditTraffic.WaitForEntriesAsync(after, sent.Count));
        }
        finally
        {
            home.Dispose();
        }
    }

    [Fact]
    public async Task Serve_AuditRetention_OldEntriesPrunedNewOnesKept()
    {
        await using var gateway = await GatewayProcess.StartAsync(null, "--audit-retention", "2s");
        var (keyA, keyB, _) = await AuditTraffic.SetUpAsync(gateway, _upstream);
        var first = await AuditTraffic.SendMixAsync(gateway, keyA, keyB);
        Assert.Equal(first.Count, (await AuditTraffic.WaitForEntriesAsync(gateway, first.Count)).Length);

        // Retention 2 s, pruned every 0.5 s by the gateway process's clock: within 4 s every first entry is gone.
        Assert.True(await RealTime.UntilAsync(async () => (await AuditTraffic.WaitForEntriesAsync(gateway, 0)).Length == 0, TimeSpan.FromSeconds(6), TimeSpan.FromMilliseconds(250)), "entries older than the retention were not pruned");

        var second = await AuditTraffic.SendMixAsync(gateway, keyA, keyB);
        AuditTraffic.AssertMatches(second, await AuditTraffic.WaitForEntriesAsync(gateway, second.Count));
    }

    [Fact]
    public async Task Serve_RouterFallsBack_EntryNamesTheRouterAndTheCredentialThatServed()
    {
        await using var backup = new SimulatedUpstream();
        await backup.StartAsync();
        _upstream.Behaviour.Scenario = "overloaded";
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("primary", _upstream.Url, "sk-ant-primary-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        await gateway.AddApiKeyAsync("backup", backup.Url, "sk-ant-backup-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        await File.WriteAllTextAsync(Path.Combine(gateway.HomePath, "routes.json"),
            """{ "routers": { "main": { "routes": [ { "model": "claude-*", "targets": [ { "credential": "primary" }, { "credential": "backup" } ] } ] } } }""");
        var key = await gateway.CreateKeyAsync("router-key", "main");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/r/main/v1/messages?x=1")
        {
            Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-api-key", key);

        using var response = await gateway.Http.SendAsync(request);

        Assert.Equal("primary=529, backup=200", response.Headers.GetValues("latchkey-attempts").Single());
        var entry = Assert.Single(await AuditTraffic.WaitForEntriesAsync(gateway, 1));
        Assert.Equal(
            """{"client_key":"router-key","credential":"backup","route":"/r/main","path":"/r/main/v1/messages","status":200,"upstream_status":200,"reason":null}""",
            $$"""{"client_key":{{entry.GetProperty("client_key").GetRawText()}},"credential":{{entry.GetProperty("credential").GetRawText()}},"route":{{entry.GetProperty("route").GetRawText()}},"path":{{entry.GetProperty("path").GetRawText()}},"status":{{entry.GetProperty("status").GetRawText()}},"upstream_status":{{entry.GetProperty("upstream_status").GetRawText()}},"reason":{{entry.GetProperty("reason").GetRawText()}}}""");
    }

    [Fact]
    public async Task Audit_BadArguments_UsageErrorsThatSayWhatToType()
    {
        using var home = new TempHome();
        var since = await Processes.Latchkey(home.Path, null, "audit", "--since", "yesterday");
        var limit = await Processes.Latchkey(home.Path, null, "audit", "--limit", "0");
        var retention = await Processes.Latchkey(home.Path, null, "serve", "--listen", "127.0.0.1:0", "--audit-retention", "forever");

        Assert.Equal(2, since.ExitCode);
        Assert.Contains("--since 'yesterday' is neither a duration nor a time", since.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, limit.ExitCode);
        Assert.Contains("--limit 0 is out of range", limit.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, retention.ExitCode);
        Assert.Contains("--audit-retention 'forever' is not a duration", retention.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>The same audit log with the store on a real PostgreSQL.</summary>
[Collection(PostgresTests.Name)]
public sealed class AuditLogPostgresTests(PostgresServer server) : IAsyncLifetime
{
    private readonly SimulatedUpstream _upstream = new();
    private readonly TempHome _keys = new();

    public Task InitializeAsync() => _upstream.StartAsync();

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _keys.Dispose();
    }

    internal async Task<Dictionary<string, string>> EnvironmentAsync()
    {
        var keyFile = Path.Combine(_keys.Root, "team.key");
        await File.WriteAllBytesAsync(keyFile, RandomNumberGenerator.GetBytes(32));
        File.SetUnixFileMode(keyFile, StoreHome.FileMode);
        return new Dictionary<string, string> { [StoreSelector.StoreVariable] = await server.CreateDatabaseAsync(), [StoreSelector.KeyFileVariable] = keyFile };
    }

    [Fact]
    public async Task Serve_OnPostgres_AuditHoldsExactlyWhatWasSentAndNoSecret()
    {
        var environment = await EnvironmentAsync();
        await using var gateway = await GatewayProcess.StartAsync(null, environment);
        var (keyA, keyB, secrets) = await AuditTraffic.SetUpAsync(gateway, _upstream);

        var sent = await AuditTraffic.SendMixAsync(gateway, keyA, keyB);

        AuditTraffic.AssertMatches(sent, await AuditTraffic.WaitForEntriesAsync(gateway, sent.Count));
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(environment[StoreSelector.StoreVariable]));
        await connection.OpenAsync();
        await using var dump = new NpgsqlCommand("SELECT string_agg(row_to_json(a)::text, E'\\n') FROM audit_event a", connection);
        var rows = (string)(await dump.ExecuteScalarAsync())!;
        Assert.Contains("agent-a", rows, StringComparison.Ordinal);
        AuditTraffic.AssertNoSecrets(rows, secrets, "the audit_event table");
    }

    [Fact]
    public async Task Start_SeveralProcessesOnADatabaseBeforeTheAuditLog_MigrateOnceAndAllSucceed()
    {
        var environment = await EnvironmentAsync();
        var url = environment[StoreSelector.StoreVariable];
        using var home = new TempHome();
        var first = await Processes.Latchkey(home.Path, null, environment, "list");
        Assert.True(first.ExitCode == 0, first.ToString());
        await ExecuteAsync(url, // what schema 1 was: no audit log, no row seals (nor the marker that rows are sealed)
            "DROP TABLE audit_event; ALTER TABLE credential DROP COLUMN row_mac, DROP COLUMN last_error_mac, DROP COLUMN upstream_failure_mac; ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; " +
            "DELETE FROM store_meta WHERE name = 'rows_sealed'; DELETE FROM schema_version WHERE version > 1");

        // A store from before seals is sealed on open only where the key is the home's own master.key and the home never
        // saw the store sealed (with LATCHKEY_KEY_FILE only 'latchkey store seal' seals it): the single-user upgrade.
        using var upgrading = new TempHome();
        Directory.CreateDirectory(upgrading.Path, StoreHome.FolderMode);
        File.Copy(environment[StoreSelector.KeyFileVariable], new StoreHome(upgrading.Path).KeyFilePath);
        var homeKey = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url };

        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Processes.Latchkey(upgrading.Path, null, homeKey, "audit", "--json")));

        Assert.All(results, r => Assert.True(r.ExitCode == 0 && r.Stdout.Trim() == "[]", r.ToString()));
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var versions = new NpgsqlCommand("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version", connection);
        Assert.Equal(string.Join(',', Enumerable.Range(1, PostgresCredentialStore.SchemaVersion)), (string)(await versions.ExecuteScalarAsync())!);
    }

    private async Task ExecuteAsync(string url, string sql)
    {
        await using var connection = new NpgsqlConnection(server.ConnectionStringFor(url));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
