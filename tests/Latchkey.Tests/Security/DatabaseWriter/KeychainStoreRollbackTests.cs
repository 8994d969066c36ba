using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Store;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// The home's master key is in the OS keychain (a real <c>gnome-keyring-daemon</c> on a private session bus), so
/// someone who can write the home folder still cannot read the key. They roll the store back to the format before row
/// seals (the genuine ciphertexts kept, a credential's upstream pointed at their server, a client key widened to
/// <c>*</c>) and delete the home's record that it was sealed (<c>sealed-stores/</c>). A home whose key is in a
/// keychain was made, or had its key moved, by a Latchkey that seals, so its store from before seals can only be a
/// rollback: refused, never sealed on open; only <c>latchkey store seal</c>, which shows the forgery and asks, seals it.
/// </summary>
public sealed class KeychainStoreRollbackTests
{
    private const string EchoSecret = "sk-HOMEWRITER-keychain-echo-7b41d9";
    private const string OtherSecret = "sk-HOMEWRITER-keychain-other-20c6fe";

    [Fact]
    public async Task Serve_KeyInTheKeychainStoreRolledBackToBeforeSealsAndTheHomesRecordDeleted_RefusedAndNothingReachesTheAttacker()
    {
        using var keyring = KeychainSession.Start();
        await using var store = WritableStore.Sqlite();
        var environment = keyring.Environment;
        await using var upstream = new SimulatedUpstream();
        await using var attacker = new SimulatedUpstream();
        await upstream.StartAsync();
        await attacker.StartAsync();
        await StoreRollbackTests.AddAsync(store.Home.Path, environment, "echo", upstream.Url + "/base", EchoSecret);
        await StoreRollbackTests.AddAsync(store.Home.Path, environment, "other", upstream.Url, OtherSecret);
        var k1 = await StoreRollbackTests.CreateKeyAsync(store.Home.Path, environment, "k1", "echo");
        Assert.True(File.Exists(Path.Combine(store.Home.Path, "master.key.keychain")) && !File.Exists(Path.Combine(store.Home.Path, "master.key")));

        // Exactly what the attacker runs: sqlite3 on the database, then rm on the home's record of the sealing.
        await store.TamperAsync(
            $"UPDATE credential SET metadata_json = replace(metadata_json, '{upstream.Url}/base', '{attacker.Url}/steal') WHERE name = 'echo'; " +
            "UPDATE client_key SET credentials_json = '[\"*\"]' WHERE name = 'k1'; " +
            "DELETE FROM store_meta WHERE name = 'rows_sealed'; " +
            StoreRollbackTests.SqliteBackToBeforeSeals);
        Directory.Delete(Path.Combine(store.Home.Path, SealLedger.FolderName), recursive: true);

        var (gateway, refusal) = await StoreRollbackTests.TryServeAsync(store.Home, environment);
        await using (gateway)
        {
            await StoreRollbackTests.SendAttackAsync(gateway, k1);
        }

        var token = await Processes.Latchkey(store.Home.Path, null, environment, "token", "echo");
        var doctor = await Processes.Latchkey(store.Home.Path, null, environment, "doctor", "--json");
        var look = await Processes.Latchkey(store.Home.Path, null, environment, "store", "seal");

        Assert.Empty(CredentialRowTamperingTests.Arrivals(attacker, EchoSecret, OtherSecret));
        Assert.DoesNotContain(CredentialRowTamperingTests.Arrivals(upstream, EchoSecret, OtherSecret), a => a.Contains("carrying", StringComparison.Ordinal));
        Assert.True(gateway is null, "latchkey serve started on a store that was rolled back:\n" + gateway?.Log);
        Assert.Contains("rolled it back", refusal, StringComparison.Ordinal);
        Assert.Contains("master key is in the OS keychain", refusal, StringComparison.Ordinal);
        Assert.True(token.ExitCode != 0 && token.Stdout.Length == 0, token.ToString());
        Assert.Equal(1, doctor.ExitCode);
        var finding = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("check").GetString() == "row seals");
        Assert.Equal("fail", finding.GetProperty("status").GetString());
        Assert.Contains("rolled it back", finding.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("0", await store.QueryAsync("SELECT count(*) FROM pragma_table_info('credential') WHERE name = 'row_mac'")); // nothing was sealed
        Assert.False(Directory.Exists(Path.Combine(store.Home.Path, SealLedger.FolderName)));

        // The one way to seal it shows what it would trust, and asks: the person sees the forged upstream and key.
        Assert.Equal(2, look.ExitCode);
        Assert.Contains($"{attacker.Url}/steal", look.Stdout, StringComparison.Ordinal);
        Assert.Contains("k1  allows * (every credential", look.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(EchoSecret, token.All + doctor.All + refusal + look.All, StringComparison.Ordinal);
    }
}
