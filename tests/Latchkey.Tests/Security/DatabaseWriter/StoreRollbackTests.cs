using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// Someone who can write the database, but has no key file, rolls a sealed store back to the format before row
/// seals: changes the rows they like (a credential's upstream pointed at their server, a client key widened to
/// <c>*</c>), then removes the sealed marker, the seal columns and the schema version, so that the store looks like
/// one an older Latchkey wrote. If opening it sealed it, every forged row would be trusted. Whether a store was
/// sealed is therefore kept where that writer cannot reach (the home folder), and a store whose key is a team's
/// shared key file is never sealed on open: only by <c>latchkey store seal</c>, which shows what it seals and asks.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class StoreRollbackTests(PostgresServer server)
{
    /// <summary>
    /// A SQLite store's schema turned back to version 4 (before row seals), as the attacker does with sqlite3: every
    /// column and table a later migration adds is dropped, so migrating forward again runs each of them once more.
    /// </summary>
    internal const string SqliteBackToBeforeSeals =
        "ALTER TABLE credential DROP COLUMN row_mac; ALTER TABLE credential DROP COLUMN last_error_mac; ALTER TABLE credential DROP COLUMN upstream_failure_mac; " +
        "ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN made_for; " +
        "ALTER TABLE client_key DROP COLUMN rate_limit; ALTER TABLE client_key DROP COLUMN rate_window_s; ALTER TABLE client_key DROP COLUMN tokens_per_day; ALTER TABLE client_key DROP COLUMN concurrent_limit; DROP TABLE key_limit_state; DROP TABLE key_lease; PRAGMA user_version = 4;";

    private const string EchoSecret = "sk-DBWRITER-rollback-echo-5e0c2b";
    private const string OtherSecret = "sk-DBWRITER-rollback-other-93da71";

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Serve_SealedStoreRolledBackToBeforeSealsWithForgedRows_RefusedNothingReachesTheAttackerAndDoctorSaysRolledBack(string backend)
    {
        await using var store = await WritableStore.CreateAsync(backend, server);
        await using var upstream = new SimulatedUpstream();
        await using var attacker = new SimulatedUpstream();
        await upstream.StartAsync();
        await attacker.StartAsync();
        await AddAsync(store.Home.Path, store.Environment, "echo", upstream.Url + "/base", EchoSecret);
        await AddAsync(store.Home.Path, store.Environment, "other", upstream.Url, OtherSecret);
        var k1 = await CreateKeyAsync(store.Home.Path, store.Environment, "k1", "echo");

        // Exactly what the attacker runs with sqlite3 or psql: forge two rows, then make the store look unsealed.
        await store.TamperAsync(
            $"UPDATE credential SET metadata_json = replace(metadata_json, '{upstream.Url}/base', '{attacker.Url}/steal') WHERE name = 'echo'; " +
            "UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'k1'; " +
            "DELETE FROM store_meta WHERE name = 'rows_sealed'; " +
            (backend == "sqlite"
                ? SqliteBackToBeforeSeals
                : "ALTER TABLE credential DROP COLUMN row_mac, DROP COLUMN last_error_mac, DROP COLUMN upstream_failure_mac; " +
                  "ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; DELETE FROM schema_version WHERE version >= 3;"));

        var (gateway, refusal) = await TryServeAsync(store.Home, store.Environment);
        await using (gateway)
        {
            await SendAttackAsync(gateway, k1);
        }

        var token = await store.Cli(null, "token", "echo");
        var doctor = await store.Cli(null, "doctor", "--json");

        Assert.Empty(CredentialRowTamperingTests.Arrivals(attacker, EchoSecret, OtherSecret));
        Assert.DoesNotContain(CredentialRowTamperingTests.Arrivals(upstream, EchoSecret, OtherSecret), a => a.Contains("carrying", StringComparison.Ordinal));
        Assert.True(gateway is null, "latchkey serve started on a store that was rolled back:\n" + gateway?.Log);
        Assert.Contains("rolled it back", refusal, StringComparison.Ordinal);
        Assert.Contains("Restore the database from a backup", refusal, StringComparison.Ordinal);
        Assert.DoesNotContain("store seal", refusal, StringComparison.Ordinal);
        Assert.True(token.ExitCode != 0 && token.Stdout.Length == 0, token.ToString());
        Assert.Equal(1, doctor.ExitCode);
        var finding = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("check").GetString() == "row seals");
        Assert.Equal("fail", finding.GetProperty("status").GetString());
        Assert.Contains("rolled it back", finding.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("backup", finding.GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.Equal("0", await store.QueryAsync(backend == "sqlite" // nothing was sealed: the columns are still gone
            ? "SELECT count(*) FROM pragma_table_info('credential') WHERE name = 'row_mac'"
            : "SELECT count(*) FROM information_schema.columns WHERE table_name = 'credential' AND column_name = 'row_mac'"));
        Assert.DoesNotContain(EchoSecret, token.All + doctor.All + refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_TeamStoreWithASharedKeyRolledBackWithForgedRows_EveryReplicaRefusesAndTheSealCommandShowsTheForgery()
    {
        await using var store = await WritableStore.CreateAsync("postgresql", server);
        var team = TeamEnvironment(store);
        await using var upstream = new SimulatedUpstream();
        await using var attacker = new SimulatedUpstream();
        await upstream.StartAsync();
        await attacker.StartAsync();
        using var replica = new TempHome();
        using var freshReplica = new TempHome();
        using var admin = new TempHome();
        await AddAsync(admin.Path, team, "echo", upstream.Url + "/base", EchoSecret);
        await AddAsync(admin.Path, team, "other", upstream.Url, OtherSecret);
        var k1 = await CreateKeyAsync(admin.Path, team, "k1", "echo");

        // A store created by this version is sealed from its first row: a replica serves it without any command.
        await using (var first = await GatewayProcess.StartAsync(replica, team))
        {
            (await first.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/echo/v1/messages", k1))).Dispose();
            Assert.Equal(["POST /base/v1/messages carrying secret #1"], CredentialRowTamperingTests.Arrivals(upstream, EchoSecret, OtherSecret));
        }

        await store.TamperAsync(
            $"UPDATE credential SET metadata_json = replace(metadata_json, '{upstream.Url}/base', '{attacker.Url}/steal') WHERE name = 'echo'; " +
            // A terminal escape in a forged URL would let it erase the line an administrator is reading.
            $"UPDATE credential SET metadata_json = replace(metadata_json, '\"{upstream.Url}\"', '\"{attacker.Url}/hidden\\u001b[1A\\u001b[2K\"') WHERE name = 'other'; " +
            "UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'k1'; " +
            "DELETE FROM store_meta WHERE name = 'rows_sealed'; " +
            "ALTER TABLE credential DROP COLUMN row_mac, DROP COLUMN last_error_mac, DROP COLUMN upstream_failure_mac; " +
            "ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; DELETE FROM schema_version WHERE version >= 3;");
        var upstreamBefore = upstream.Requests.Count;

        var (sawIt, sawItRefusal) = await TryServeAsync(replica, team);
        await using (sawIt)
        {
            await SendAttackAsync(sawIt, k1);
        }

        var (fresh, freshRefusal) = await TryServeAsync(freshReplica, team);
        await using (fresh)
        {
            await SendAttackAsync(fresh, k1);
        }

        var look = await Processes.Latchkey(admin.Path, null, team, "store", "seal");

        Assert.Empty(CredentialRowTamperingTests.Arrivals(attacker, EchoSecret, OtherSecret));
        Assert.Equal(upstreamBefore, upstream.Requests.Count);
        Assert.True(sawIt is null && fresh is null, "a replica served a store that was rolled back:\n" + sawIt?.Log + fresh?.Log);
        Assert.Contains("rolled it back", sawItRefusal, StringComparison.Ordinal); // this replica's home saw the store sealed
        Assert.Contains("latchkey store seal", freshRefusal, StringComparison.Ordinal); // a fresh home cannot know: it never seals by itself
        Assert.Contains("LATCHKEY_KEY_FILE", freshRefusal, StringComparison.Ordinal);
        Assert.Equal(2, look.ExitCode); // not a terminal and no --yes: shown, not sealed
        Assert.Contains($"{attacker.Url}/steal", look.Stdout, StringComparison.Ordinal); // the administrator sees the forged upstream
        Assert.Contains("k1  allows * (every credential", look.Stdout, StringComparison.Ordinal); // and the widened key
        Assert.Contains($"{attacker.Url}/hidden", look.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", look.Stdout, StringComparison.Ordinal); // shown, never obeyed
        Assert.Equal("2", await store.QueryAsync("SELECT max(version) FROM schema_version"));
        Assert.DoesNotContain(EchoSecret, look.All + sawItRefusal + freshRefusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreSeal_StoreFromBeforeSealsWithASharedKey_RefusedUntilSealedOnceThenServedAndAudited()
    {
        await using var store = await WritableStore.CreateAsync("postgresql", server);
        var team = TeamEnvironment(store);
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        using var writer = new TempHome();
        await AddAsync(writer.Path, team, "echo", upstream.Url + "/base", EchoSecret, "--extra-header", "anthropic-version: 2023-06-01");
        var k1 = await CreateKeyAsync(writer.Path, team, "k1", "echo");
        await CreateKeyAsync(writer.Path, team, "ci", "*");
        // What a Latchkey from before seals left: the same rows, no seal columns, no marker, schema 2.
        await store.TamperAsync(
            "DELETE FROM store_meta WHERE name = 'rows_sealed'; " +
            "ALTER TABLE credential DROP COLUMN row_mac, DROP COLUMN last_error_mac, DROP COLUMN upstream_failure_mac; " +
            "ALTER TABLE credential_history DROP COLUMN row_mac; ALTER TABLE client_key DROP COLUMN row_mac; DELETE FROM schema_version WHERE version >= 3;");
        using var replica = new TempHome();
        using var admin = new TempHome();

        var (refused, refusal) = await TryServeAsync(replica, team);
        await using (refused)
        {
            await SendAttackAsync(refused, k1);
        }

        var doctor = await Processes.Latchkey(replica.Path, null, team, "doctor", "--json");
        var unconfirmed = await Processes.Latchkey(admin.Path, "yes\n", team, "store", "seal");
        var schemaAfterRefusals = await store.QueryAsync("SELECT max(version) FROM schema_version");
        var sealedNow = await Processes.Latchkey(admin.Path, null, team, "store", "seal", "--yes");
        var again = await Processes.Latchkey(admin.Path, null, team, "store", "seal", "--yes");
        await using var gateway = await GatewayProcess.StartAsync(replica, team);
        using var served = await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/echo/v1/messages", k1));
        var audit = await Processes.Latchkey(admin.Path, null, team, "audit", "--json");

        Assert.True(refused is null, "a replica sealed and served a store only 'latchkey store seal' may seal:\n" + refused?.Log);
        Assert.Contains("latchkey store seal", refusal, StringComparison.Ordinal);
        var finding = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("check").GetString() == "row seals");
        Assert.Equal("fail", finding.GetProperty("status").GetString());
        Assert.Contains("latchkey store seal", finding.GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, unconfirmed.ExitCode); // standard input is not a terminal: a piped "yes" is no confirmation
        Assert.Equal("2", schemaAfterRefusals);
        Assert.True(sealedNow.ExitCode == 0, sealedNow.ToString());
        Assert.Contains($"upstream             {upstream.Url}/base", sealedNow.Stdout, StringComparison.Ordinal);
        Assert.Contains("sends the secret in  x-api-key: {secret}", sealedNow.Stdout, StringComparison.Ordinal);
        Assert.Contains("k1  allows echo  never expires", sealedNow.Stdout, StringComparison.Ordinal);
        Assert.Contains("ci  allows * (every credential", sealedNow.Stdout, StringComparison.Ordinal);
        Assert.Contains("Sealed the store", sealedNow.Stdout, StringComparison.Ordinal);
        Assert.True(again.ExitCode == 0 && again.Stdout.Contains("sealed already", StringComparison.Ordinal), again.ToString());
        Assert.NotEqual(HttpStatusCode.ServiceUnavailable, served.StatusCode);
        Assert.Equal(["POST /base/v1/messages carrying secret #1"], CredentialRowTamperingTests.Arrivals(upstream, EchoSecret));
        var entry = Assert.Single(JsonDocument.Parse(audit.Stdout).RootElement.EnumerateArray(), e => e.GetProperty("route").GetString() == "latchkey store seal");
        Assert.Contains("1 credential(s)", entry.GetProperty("path").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(EchoSecret, refusal + doctor.All + unconfirmed.All + sealedNow.All + audit.All, StringComparison.Ordinal);
    }

    /// <summary>The store's environment with a team's shared key file (<c>LATCHKEY_KEY_FILE</c>), made once for the test.</summary>
    private static Dictionary<string, string> TeamEnvironment(WritableStore store)
    {
        var keyFile = Path.Combine(store.Home.Root, "team.key");
        File.WriteAllBytes(keyFile, RandomNumberGenerator.GetBytes(32));
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return new Dictionary<string, string>(store.Environment) { [StoreSelector.KeyFileVariable] = keyFile };
    }

    internal static async Task AddAsync(string home, IReadOnlyDictionary<string, string> environment, string name, string upstream, string secret, params string[] options)
    {
        var added = await Processes.Latchkey(home, secret + "\n", environment, ["add", name, "--upstream", upstream, "--header", "x-api-key", "--format", "{secret}", .. options]);
        Assert.True(added.ExitCode == 0, added.ToString());
    }

    internal static async Task<string> CreateKeyAsync(string home, IReadOnlyDictionary<string, string> environment, string name, string credential)
    {
        var created = await Processes.Latchkey(home, null, environment, "keys", "create", name, "--credential", credential);
        Assert.True(created.ExitCode == 0, created.ToString());
        return created.Stdout.Trim();
    }

    /// <summary>Starts <c>latchkey serve</c>; a gateway that refuses to start gives back what it said instead.</summary>
    internal static async Task<(GatewayProcess? Gateway, string Refusal)> TryServeAsync(TempHome home, IReadOnlyDictionary<string, string> environment)
    {
        try
        {
            return (await GatewayProcess.StartAsync(home, environment), string.Empty);
        }
        catch (InvalidOperationException ex)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>What the attacker wants from a gateway that started: k1 to the forged credential, and to one it was never given.</summary>
    internal static async Task SendAttackAsync(GatewayProcess? gateway, string k1)
    {
        if (gateway is null)
        {
            return;
        }

        (await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/echo/v1/messages", k1))).Dispose();
        (await gateway.Http.SendAsync(CredentialRowTamperingTests.Messages("/c/other/v1/messages", k1))).Dispose();
    }
}
