using System.CommandLine;
using Latchkey.Store;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey keys create|list|revoke</c>: the client keys agents hold instead of real credentials. A key is
/// printed once, on standard output, when it is created; the store keeps only an HMAC of it.
/// </summary>
internal static class KeyCommands
{
    public static Command Build(CliApp app) =>
        new Command("keys", "Create, list and revoke the client keys agents use to reach the gateway.") { Create(app), List(app), Revoke(app) };

    private static Command Create(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "A name for the key (who or what holds it), e.g. 'laptop-claude'." };
        var credentials = new Option<string[]>("--credential") { Description = "A credential or router the key may use (repeatable; '*' allows all).", Required = true, AllowMultipleArgumentsPerToken = false };
        var expires = new Option<string?>("--expires") { Description = "How long the key works, e.g. 12h or 30d (default: until revoked)." };
        var command = new Command("create", "Create a client key and print it once.") { name, credentials, expires };
        command.SetAction(async (parse, ct) =>
        {
            var keyName = parse.GetValue(name)!;
            if (CredentialNames.Validate(keyName) is { } problem)
            {
                throw new CliException(ExitCodes.Usage, problem.Replace("credential", "key", StringComparison.Ordinal), "Choose a name like 'laptop-claude'.");
            }

            var allowed = (parse.GetValue(credentials) ?? []).Distinct(StringComparer.Ordinal).ToList();
            var expiresAt = parse.GetValue(expires) is { } e ? app.Time.GetUtcNow() + Durations.Parse(e, "--expires") : (DateTimeOffset?)null;
            await using var services = app.Open(parse);
            var store = services.Store;
            var known = (await store.ListAsync(ct)).Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
            var unknown = allowed.Where(c => c != ClientKey.Everything && !known.Contains(c)).ToList();
            if (unknown.Count > 0)
            {
                app.Console.Error.WriteLine($"Note: no credential is named {string.Join(", ", unknown.Select(u => $"'{u}'"))} yet (fine for a router name in routes.json).");
            }

            var created = await store.CreateKeyAsync(keyName, allowed, expiresAt, ct)
                ?? throw new CliException(ExitCodes.Failure, $"A client key named '{keyName}' already exists.", $"Choose another name, or revoke it first: latchkey keys revoke {keyName}");
            app.Console.Out.WriteLine(created.Value);
            app.Console.Error.WriteLine($"Created client key '{keyName}' for {string.Join(", ", allowed)}{(expiresAt is { } x ? $", expiring {x:u}" : string.Empty)}.");
            app.Console.Error.WriteLine("  This is the only time it is shown: give it to the agent now (as its API key). Revoke with: latchkey keys revoke " + keyName);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command List(CliApp app)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table." };
        var command = new Command("list", "List client keys (never their values).") { json };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var now = app.Time.GetUtcNow();
            var views = (await services.Store.ListKeysAsync(ct)).Select(k => new KeyView(k.Name, k.StateAt(now), k.Credentials, k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.MadeFor)).ToList();
            return CredentialCommands.PrintList(app, parse.GetValue(json), views, views, "No client keys yet. Create one with: latchkey keys create NAME --credential CREDENTIAL",
                ["NAME", "STATE", "ALLOWS", "FOR", "CREATED", "EXPIRES"],
                v => [Markup.Escape(v.Name), v.State == "active" ? "[green]active[/]" : $"[red]{v.State}[/]", Markup.Escape(string.Join(", ", v.Credentials)), Markup.Escape(v.MadeFor ?? "-"), v.CreatedAt.ToString("u"), v.ExpiresAt?.ToString("u") ?? "-"]);
        });
    }

    private static Command Revoke(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The key to revoke." };
        var command = new Command("revoke", "Revoke a client key: the gateway refuses it within a second.") { name };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var keyName = parse.GetValue(name)!;
            var store = services.Store;
            if (!await store.RevokeKeyAsync(keyName, ct))
            {
                throw new CliException(ExitCodes.NotFound, $"No active client key is named '{keyName}'.", "'latchkey keys list' shows the keys.");
            }

            app.Console.Out.WriteLine($"Revoked client key '{keyName}'.");
            return ExitCodes.Success;
        });
    }
}

/// <summary>A client key as <c>keys list --json</c> shows it.</summary>
/// <param name="Name">The key's name.</param>
/// <param name="State"><c>active</c>, <c>expired</c>, <c>revoked</c> or <c>tampered</c>.</param>
/// <param name="Credentials">The credentials and routers it may use (<c>*</c>: all).</param>
/// <param name="CreatedAt">When it was made.</param>
/// <param name="ExpiresAt">When it stops working; null for never.</param>
/// <param name="RevokedAt">When it was revoked; null while it is not.</param>
/// <param name="MadeFor">The client <c>latchkey mcp install</c> made the key for and wrote it into (e.g. <c>claude-code</c>); null for a key made by hand.</param>
internal sealed record KeyView(string Name, string State, IReadOnlyList<string> Credentials, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt, string? MadeFor);
