using System.CommandLine;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey key where|move</c>: where the master key that seals every secret lives (the OS keychain, or the
/// home's <c>master.key</c>), and moving it between the two with no moment where neither holds it.
/// </summary>
internal static class MasterKeyCommand
{
    public static Command Build(CliApp app) =>
        new Command("key", "Where the master key lives (the OS keychain or a file), and moving it.") { Where(app), Move(app) };

    /// <summary>Where the master key of the chosen store lives, in words (for <c>status</c>, <c>doctor</c> and <c>key where</c>).</summary>
    public static KeyLocationView Locate(string? storeOption, string? homeOption, Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var home = StoreHome.Resolve(homeOption, getEnvironment);
        if (StoreSelector.Choose(storeOption, getEnvironment).Postgres is not null && getEnvironment(StoreSelector.KeyFileVariable) is { Length: > 0 } team)
        {
            return new KeyLocationView("team-file", $"the team's key file {Path.GetFullPath(team)} ({StoreSelector.KeyFileVariable})", null);
        }

        var keys = MasterKeys.For(home, getEnvironment);
        var place = keys.Where();
        return new KeyLocationView(place switch { MasterKeyPlace.File => "file", MasterKeyPlace.Keychain => "keychain", _ => "none" }, keys.Describe(), keys.Keychain?.Kind);
    }

    private static Command Where(CliApp app)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts." };
        var command = new Command("where", "Say where the master key lives: the OS keychain, the home's master.key, or a team's key file.") { json };
        command.SetAction(parse =>
        {
            var view = Locate(parse.GetValue(CliApp.StoreOption), parse.GetValue(CliApp.HomeOption));
            if (parse.GetValue(json))
            {
                CredentialCommands.WriteJson<KeyLocationView>(app, [view]);
            }
            else
            {
                app.Console.Out.WriteLine($"Master key: {view.Description}.");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Move(CliApp app)
    {
        var to = new Option<string>("--to") { Description = "keychain (the OS keychain: Secret Service, macOS Keychain, DPAPI) or file (the home's master.key).", Required = true };
        to.AcceptOnlyFromAmong("keychain", "file");
        var command = new Command("move", "Move the master key into the OS keychain or into the home's master.key: the new place is written and checked by opening the records with the key read back from it before the old place is removed.") { to };
        command.SetAction(async (parse, ct) =>
        {
            if (StoreSelector.Choose(parse.GetValue(CliApp.StoreOption)).Postgres is not null)
            {
                throw new CliException(ExitCodes.Usage, "'latchkey key move' moves the key of the SQLite store in the home folder.",
                    $"A PostgreSQL store's key is the team's key file ({StoreSelector.KeyFileVariable}), which stays where the team keeps it.");
            }

            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var keys = MasterKeys.For(home);
            var target = parse.GetValue(to) == "keychain" ? MasterKeyPlace.Keychain : MasterKeyPlace.File;
            var before = keys.Describe();

            // What the store looks like with the key where it is now: the key read back from the new place must open as much.
            string keyId;
            int readable;
            using (var current = SqliteCredentialStore.Open(home, app.Time))
            {
                keyId = current.KeyId;
                readable = await CountReadableAsync(current, ct);
            }

            var checkedRecords = 0;
            var moved = keys.MoveTo(target, back =>
            {
                using var store = SqliteCredentialStore.OpenWithKey(home, app.Time, back);
                if (!string.Equals(store.KeyId, keyId, StringComparison.Ordinal))
                {
                    return $"it is key {store.KeyId}, not {keyId}";
                }

                if (!store.SelfTest())
                {
                    return "it cannot seal and open a probe";
                }

                checkedRecords = CountReadableAsync(store, ct).GetAwaiter().GetResult();
                return checkedRecords == readable ? null : $"it opens {checkedRecords} record(s), not {readable}";
            });
            if (!moved.Moved)
            {
                app.Console.Out.WriteLine($"The master key is already in {before}; nothing was changed.");
                return ExitCodes.Success;
            }

            app.Console.Out.WriteLine($"Moved the master key (id {keyId}) from {before} to {keys.Describe()}.");
            app.Console.Error.WriteLine($"  Checked: the key read back from its new place opened all {checkedRecords} record(s) before the old place was removed.");
            if (target == MasterKeyPlace.File)
            {
                app.Console.Error.WriteLine($"  Anyone who can read {home.KeyFilePath} as you can decrypt the store: back it up with the database and keep the home folder private.");
            }

            if (moved.Warning is { } warning)
            {
                app.Console.Error.WriteLine($"  Warning: {warning}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static async Task<int> CountReadableAsync(SqliteCredentialStore store, CancellationToken ct)
    {
        var records = await store.ListAsync(ct);
        var keys = await store.ListKeysAsync(ct);
        return records.Count(r => r.State != CredentialState.Quarantined) + keys.Count(k => !k.Tampered);
    }
}

/// <summary>Where the master key lives, as <c>key where --json</c> shows it.</summary>
/// <param name="Place"><c>keychain</c>, <c>file</c>, <c>team-file</c> or <c>none</c> (a new home).</param>
/// <param name="Description">In words, with the file's path or the keychain item.</param>
/// <param name="Keychain">This machine's OS keychain (<c>secret-service</c>, <c>macos-keychain</c>, <c>dpapi</c>), or null when it has none Latchkey uses.</param>
internal sealed record KeyLocationView(string Place, string Description, string? Keychain);
