using System.CommandLine;
using System.Globalization;
using Latchkey.Diagnostics;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey store seal</c>: seals a store written before rows carried seals, once, on an administrator's word.
/// A store whose master key comes from <c>LATCHKEY_KEY_FILE</c> (a team's) is never sealed on open, because no
/// replica can tell a store that was never sealed from one a database writer rolled back (see
/// <see cref="StoreSealing"/>). The command shows what sealing will make Latchkey trust (every credential's upstream
/// and token endpoint, every saved version, every client key's rights), asks, and seals in one transaction only if
/// the store still holds exactly that, recording it in the audit log.
/// </summary>
internal static class StoreCommands
{
    public static Command Build(CliApp app) =>
        new Command("store", "Manage the store itself.") { Seal(app) };

    private static Command Seal(CliApp app)
    {
        var yes = new Option<bool>("--yes") { Description = "Seal without asking (after checking what 'latchkey store seal' shows)." };
        var command = new Command("seal",
            "Seal a store from before row seals, once: show every credential's upstream and every client key's rights, ask, then seal them. Latchkey never asks this of a store that was sealed before unless someone rolled it back.")
        {
            yes,
        };
        command.SetAction((parse, ct) =>
        {
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var storeOption = parse.GetValue(CliApp.StoreOption);
            var location = StoreSelector.Choose(storeOption).Postgres?.ToString() ?? home.DatabasePath;
            var preview = StoreSelector.PreviewSealing(storeOption, home, app.Time);
            if (preview is null)
            {
                app.Console.Out.WriteLine($"The store at {location} is sealed already: every row carries a seal. Nothing to do.");
                return Task.FromResult(ExitCodes.Success);
            }

            Show(app.Console.Out, preview);
            if (!parse.GetValue(yes))
            {
                if (!app.Console.InputIsTerminal)
                {
                    throw new CliException(ExitCodes.Usage,
                        "latchkey store seal asks before sealing, and standard input is not a terminal. Nothing was sealed.",
                        "Check every upstream, token endpoint and client key above, then run 'latchkey store seal --yes'.");
                }

                app.Console.Error.Write("Seal the store as shown above? Type 'yes' to seal: ");
                if (!string.Equals(app.Console.In.ReadLine()?.Trim(), "yes", StringComparison.Ordinal))
                {
                    app.Console.Error.WriteLine("Nothing was sealed.");
                    return Task.FromResult(ExitCodes.Failure);
                }
            }

            StoreSelector.Seal(storeOption, home, app.Time, preview);
            var rows = preview.Credentials.Count(c => !c.Saved);
            app.Console.Out.WriteLine(
                $"Sealed the store at {location}: {rows} credential(s), {preview.Credentials.Count - rows} saved version(s), {preview.Keys.Count} client key(s). " +
                "A row changed from now on is refused as tampered. Recorded in the audit log ('latchkey audit').");
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    /// <summary>
    /// Everything sealing will make Latchkey trust. Every value was read from the database, so it is shown with
    /// control and format characters replaced: a name or URL cannot move the cursor or hide a line.
    /// </summary>
    private static void Show(TextWriter output, SealPreview preview)
    {
        output.WriteLine($"The store at {preview.Location} has no row seals (schema {preview.FromVersion}, from a Latchkey before seals).");
        output.WriteLine("Sealing makes Latchkey trust every row below exactly as it is now. Check that each upstream and token endpoint is one");
        output.WriteLine("you added, and that each client key allows only what you gave it. If this store was sealed before, do not seal it:");
        output.WriteLine("someone who can write the database rolled it back; restore it from a backup instead.");
        output.WriteLine();
        var current = preview.Credentials.Where(c => !c.Saved).ToList();
        output.WriteLine($"Credentials ({current.Count}):");
        foreach (var credential in preview.Credentials)
        {
            output.WriteLine(credential.Saved
                ? $"  {Clean(credential.Name)}  saved version {credential.Version} (restorable later)"
                : $"  {Clean(credential.Name)}  {Clean(credential.Kind)}  {Clean(credential.State)}  version {credential.Version}");
            if (!credential.UnderThisKey)
            {
                output.WriteLine("    (its secret is sealed with another master key: it stays unusable)");
            }

            if (credential.Metadata is not { } m)
            {
                output.WriteLine("    (its metadata cannot be read: it will be quarantined)");
                continue;
            }

            Field(output, "upstream", m.Upstream);
            Field(output, "sends the secret in", $"{m.Injection.Header}: {m.Injection.Format}");
            Field(output, "plain http allowed", m.AllowInsecureHttp ? "yes (--allow-insecure-http)" : null);
            Field(output, "extra headers", m.ExtraHeaders.Count == 0 ? null : string.Join("; ", m.ExtraHeaders.Select(h => $"{h.Key}: {h.Value}")));
            Field(output, "token endpoint", m.TokenEndpoint);
            Field(output, "issuer", m.Issuer);
            Field(output, "resource", m.Resource);
            Field(output, "revocation endpoint", m.RevocationEndpoint);
            Field(output, "client id", m.Client?.ClientId);
        }

        output.WriteLine();
        output.WriteLine($"Client keys ({preview.Keys.Count}):");
        foreach (var key in preview.Keys)
        {
            var allows = key.Allows.Contains(ClientKey.Everything, StringComparer.Ordinal) ? "* (every credential and router)" : string.Join(", ", key.Allows.Select(Clean));
            var state = key.RevokedAt is { } r ? $"revoked {Time(r)}" : key.ExpiresAt is { } e ? $"expires {Time(e)}" : "never expires";
            output.WriteLine($"  {Clean(key.Name)}  allows {allows}  {state}");
        }

        output.WriteLine();
        output.WriteLine("The last refresh error and upstream failure of each credential are not shown, so they are not sealed: they are dropped.");
    }

    private static void Field(TextWriter output, string label, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            output.WriteLine($"    {label,-20} {Clean(value)}");
        }
    }

    private static string Clean(string text) => ServerText.Sanitize(text, []);

    private static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
}
