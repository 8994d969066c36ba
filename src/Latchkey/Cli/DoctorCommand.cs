using System.CommandLine;
using Latchkey.Store;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey doctor</c>: checks the home folder's permissions and filesystem, the key, the database's
/// integrity and every record, and says how to fix each problem. It never changes anything.
/// </summary>
internal static class DoctorCommand
{
    public static Command Build(CliApp app)
    {
        var json = new Option<bool>("--json") { Description = "Print the findings as JSON." };
        var command = new Command("doctor", "Check the store (folder permissions, key, database integrity, every record) and say how to fix each problem. Exits 1 when something needs fixing.") { json };
        command.SetAction(async (parse, ct) =>
        {
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var findings = StoreSelector.Choose(parse.GetValue(CliApp.StoreOption)).Postgres is { } postgres
                ? await RunPostgresChecksAsync(postgres, home, app.Time, Environment.GetEnvironmentVariable, ct)
                : await RunChecksAsync(home, app.Time, ct);
            if (parse.GetValue(json))
            {
                CredentialCommands.WriteJson(app, findings);
            }
            else
            {
                var table = CredentialCommands.NewTable("CHECK", "RESULT", "DETAIL", "FIX");
                foreach (var f in findings)
                {
                    var result = f.Status switch { "ok" => "[green]ok[/]", "warn" => "[yellow]warn[/]", _ => "[red]FAIL[/]" };
                    table.AddRow(Markup.Escape(f.Check), result, Markup.Escape(f.Detail), Markup.Escape(f.Fix ?? "-"));
                }

                CredentialCommands.Render(app, table);
                var failures = findings.Count(f => f.Status == "fail");
                app.Console.Out.WriteLine(failures == 0 ? "No problems found." : $"{failures} problem(s) need fixing.");
            }

            return findings.Any(f => f.Status == "fail") ? ExitCodes.Failure : ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The checks for a PostgreSQL store: the shared key, the connection and schema, every record. Writes nothing.</summary>
    public static async Task<IReadOnlyList<DoctorFinding>> RunPostgresChecksAsync(PostgresLocation location, StoreHome home, TimeProvider time, Func<string, string?> getEnvironment, CancellationToken ct)
    {
        var findings = new List<DoctorFinding>();
        findings.Add(location.TransportWarning() is { } transport
            ? new("connection", "warn", transport, "Add sslmode=verify-full to LATCHKEY_STORE (docs/team.md).")
            : new("connection", "ok", location.Builder.SslMode is Npgsql.SslMode.VerifyFull or Npgsql.SslMode.VerifyCA
                ? $"The connection to {location} verifies the server's certificate (sslmode={(location.Builder.SslMode == Npgsql.SslMode.VerifyFull ? "verify-full" : "verify-ca")})."
                : $"{location} is on this machine (loopback or a Unix socket).", null));
        var keyFile = getEnvironment(StoreSelector.KeyFileVariable);
        if (string.IsNullOrEmpty(keyFile) && !File.Exists(home.KeyFilePath))
        {
            findings.Add(new("key storage", "fail", $"No master key: {StoreSelector.KeyFileVariable} is not set and {home.KeyFilePath} does not exist.",
                $"Set {StoreSelector.KeyFileVariable} to the key file every replica shares (docs/store.md)."));
            return findings;
        }

        byte[] key;
        try
        {
            key = StoreSelector.LoadSharedKey(home, getEnvironment);
        }
        catch (StoreException ex)
        {
            findings.Add(new("key storage", "fail", ex.Message, null));
            return findings;
        }

        findings.Add(new("key storage", "ok",
            $"The master key comes from {(string.IsNullOrEmpty(keyFile) ? home.KeyFilePath : keyFile)}; every replica needs the same file, and the database never sees it.", null));
        PostgresCredentialStore store;
        try
        {
            var protector = new SecretProtector(key);
            store = PostgresCredentialStore.Open(location, protector, time, readOnly: true,
                StoreSelector.Sealing(new StoreChoice("postgresql", location), home, getEnvironment));
        }
        catch (StoreException ex)
        {
            findings.Add(Refused(ex, null));
            return findings;
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
        }

        await using (store)
        {
            findings.Add(new("database", "ok", $"PostgreSQL at {store.Location} answers, with schema {PostgresCredentialStore.SchemaVersion} and this key ({store.KeyId}).", null));
            findings.Add(store.SelfTest()
                ? new("key self-test", "ok", $"Sealing and opening a probe with key {store.KeyId} works.", null)
                : new("key self-test", "fail", "The master key cannot seal and open a probe.", "Copy the key file from a replica that works."));
            await CheckRowsAsync(findings, store, store.RowsSealedMarkerIntact(), ct);
        }

        return findings;
    }

    public static async Task<IReadOnlyList<DoctorFinding>> RunChecksAsync(StoreHome home, TimeProvider time, CancellationToken ct)
    {
        var findings = new List<DoctorFinding>();
        if (!Directory.Exists(home.Path))
        {
            findings.Add(new("home folder", "ok", $"{home.Path} does not exist yet; the first 'latchkey add' creates it (0700).", null));
            return findings;
        }

        var folderProblem = home.CheckFolderMode();
        findings.Add(folderProblem is null
            ? new("home folder", "ok", $"{home.Path} is private (0700).", null)
            : new("home folder", "fail", folderProblem, $"chmod 700 '{home.Path}'"));

        var fsType = NetworkFilesystem.Detect(home.Path);
        findings.Add(fsType is null
            ? new("filesystem", "ok", "The home folder is on a local filesystem.", null)
            : new("filesystem", "fail", $"The home folder is on a network filesystem ({fsType}); SQLite's WAL is unsafe there.", "Move the home folder to a local disk (--home or LATCHKEY_HOME)."));

        foreach (var file in new[] { home.DatabasePath, home.DatabasePath + "-wal", home.DatabasePath + "-shm", home.KeyFilePath })
        {
            if (StoreHome.CheckFileMode(file) is { } problem)
            {
                findings.Add(new("file permissions", "fail", problem, $"chmod 600 '{file}'"));
            }
        }

        if (!findings.Any(f => f.Check == "file permissions"))
        {
            findings.Add(new("file permissions", "ok", "The database, its WAL and the key file are private (0600).", null));
        }

        findings.Add(KeyStorageFinding(MasterKeys.For(home)));

        if (findings.Any(f => f.Status == "fail"))
        {
            return findings;
        }

        SqliteCredentialStore store;
        try
        {
            store = SqliteCredentialStore.Open(home, time);
        }
        catch (StoreException ex)
        {
            findings.Add(Refused(ex, ex.Code == "database_corrupt" ? "Restore the home folder from a backup, or move latchkey.db aside." : null));
            return findings;
        }

        await using (store)
        {
            findings.Add(store.SelfTest()
                ? new("key self-test", "ok", $"Sealing and opening a probe with key {store.KeyId} works.", null)
                : new("key self-test", "fail", "The master key cannot seal and open a probe.", "Restore master.key from a backup."));

            var integrity = store.CheckIntegrity();
            findings.Add(integrity.Count == 0
                ? new("database integrity", "ok", $"SQLite's integrity check passed ({home.DatabasePath}).", null)
                : new("database integrity", "fail", $"SQLite's integrity check found: {string.Join("; ", integrity.Take(5))}", "Restore the home folder from a backup; 'sqlite3 latchkey.db .recover' can save what is left."));

            await CheckRowsAsync(findings, store, store.RowsSealedMarkerIntact(), ct);
        }

        return findings;
    }

    /// <summary>Where the master key lives, and whether it can be had from there (the keychain is asked, nothing is made).</summary>
    private static DoctorFinding KeyStorageFinding(MasterKeys keys)
    {
        var where = keys.Describe();
        switch (keys.Where())
        {
            case MasterKeyPlace.File:
                return new("key storage", "warn",
                    $"The master key is in {where}; anyone who can read it as you can decrypt the store. Back it up with the database: without it, secrets cannot be decrypted.",
                    keys.Keychain is null
                        ? $"Keep the home folder private (no OS keychain is in use here{(OsKeyStores.ForThisMachine() is null ? $": {OsKeyStores.SwitchVariable}=off or an unsupported system" : string.Empty)})."
                        : $"Move it into {keys.Keychain.Description}: latchkey key move --to keychain");
            case MasterKeyPlace.Keychain:
                try
                {
                    var key = keys.TryLoad();
                    if (key is not null)
                    {
                        System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
                    }

                    return new("key storage", "ok", $"The master key is in {where}; the home folder holds only a note of where ({keys.NotePath}).", null);
                }
                catch (StoreException ex)
                {
                    return new("key storage", "fail", ex.Message, ex.Code switch
                    {
                        "keychain_locked" => keys.Platform?.UnlockHint,
                        "keychain_unavailable" => keys.Platform?.ReachHint,
                        _ => null,
                    });
                }

            default:
                return new("key storage", "fail", $"The master key file {keys.Home.KeyFilePath} is missing, and {keys.NotePath} does not say it is in the OS keychain, so no stored secret can be decrypted.", "Restore master.key from the backup of the home folder.");
        }
    }

    /// <summary>
    /// The finding for a store that could not be opened. A store that lost its seals (rolled back) or waits for
    /// <c>latchkey store seal</c> is a <c>row seals</c> failure, with what to do.
    /// </summary>
    private static DoctorFinding Refused(StoreException ex, string? fix) => ex.Code switch
    {
        RowCodec.RolledBackCode => new("row seals", "fail", ex.Message,
            "Restore the database from a backup made after it was sealed, or start a new store and add the credentials again; find out who can write the database."),
        RowCodec.UnsealedCode => new("row seals", "fail", ex.Message,
            "If the store was sealed before, restore it from a backup. If it is being upgraded from a version before seals: latchkey store seal (it shows what it seals and asks first)."),
        _ => new("database", "fail", ex.Message, fix),
    };

    /// <summary>
    /// Every record and client key: quarantined records (a changed one has the reason <c>tampered</c>) and client keys
    /// whose row was changed outside Latchkey fail, with what to do; so does a missing or changed sealed marker.
    /// </summary>
    private static async Task CheckRowsAsync(List<DoctorFinding> findings, ILatchkeyStore store, bool markerIntact, CancellationToken ct)
    {
        var records = await store.ListAsync(ct);
        var quarantined = records.Where(r => r.State == CredentialState.Quarantined).ToList();
        foreach (var record in quarantined)
        {
            findings.Add(new($"record '{record.Name}'", "fail", record.Reason?.Message ?? "It cannot be read.", record.Reason?.Fix));
        }

        if (quarantined.Count == 0)
        {
            findings.Add(new("records", "ok", $"All {records.Count} record(s) match their seals, decrypt and decode.", null));
        }

        var keys = await store.ListKeysAsync(ct);
        var tampered = keys.Where(k => k.Tampered).ToList();
        foreach (var key in tampered)
        {
            findings.Add(new($"client key '{key.Name}'", "fail",
                $"The client key '{key.Name}' was changed outside Latchkey: its row does not match the seal this install's master key put on it (its credentials, expiry or revocation were edited, or an earlier copy of it was put back). The gateway refuses it.",
                $"latchkey keys revoke {key.Name}, create a new key for whoever used it (latchkey keys create NAME --credential ...), and find out who can write the database."));
        }

        if (tampered.Count == 0)
        {
            findings.Add(new("client keys", "ok", $"All {keys.Count} client key(s) match their seals.", null));
        }

        findings.Add(markerIntact
            ? new("row seals", "ok", "The store records that every row carries a seal, and that record is intact.", null)
            : new("row seals", "fail",
                "The store's record that its rows are sealed is missing or changed: someone edited the database's own bookkeeping. Rows are still checked one by one, but the database was tampered with.",
                "Find out who can write the database; restore it from a backup you trust if records or keys above are reported changed."));
    }
}
