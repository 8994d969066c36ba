using System.CommandLine;
using Latchkey.Store;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey keys create|list|set|revoke</c>: the client keys agents hold instead of real credentials, and what each
/// may spend (<c>--rate</c>, <c>--tokens</c>, <c>--concurrent</c>). A key is printed once, on standard output, when it
/// is created; the store keeps only an HMAC of it.
/// </summary>
internal static class KeyCommands
{
    public static Command Build(CliApp app) =>
        new Command("keys", "Create, list, limit and revoke the client keys agents use to reach the gateway.") { Create(app), List(app), Set(app), Revoke(app) };

    private static Command Create(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "A name for the key (who or what holds it), e.g. 'laptop-claude'." };
        var credentials = new Option<string[]>("--credential") { Description = "A credential or router the key may use (repeatable; '*' allows all).", Required = true, AllowMultipleArgumentsPerToken = false };
        var expires = new Option<string?>("--expires") { Description = "How long the key works, e.g. 12h or 30d (default: until revoked)." };
        var (rate, tokens, concurrent) = LimitOptions(canRemove: false);
        var command = new Command("create", "Create a client key and print it once.") { name, credentials, expires, rate, tokens, concurrent };
        command.SetAction(async (parse, ct) =>
        {
            var keyName = parse.GetValue(name)!;
            if (CredentialNames.Validate(keyName) is { } problem)
            {
                throw new CliException(ExitCodes.Usage, problem.Replace("credential", "key", StringComparison.Ordinal), "Choose a name like 'laptop-claude'.");
            }

            var allowed = (parse.GetValue(credentials) ?? []).Distinct(StringComparer.Ordinal).ToList();
            var expiresAt = parse.GetValue(expires) is { } e ? app.Time.GetUtcNow() + Durations.Parse(e, "--expires") : (DateTimeOffset?)null;
            var limits = ParseLimits(parse, rate, tokens, concurrent).Apply(null);
            await using var services = app.Open(parse);
            var store = services.Store;
            var known = (await store.ListAsync(ct)).Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
            var unknown = allowed.Where(c => c != ClientKey.Everything && !known.Contains(c)).ToList();
            if (unknown.Count > 0)
            {
                app.Console.Error.WriteLine($"Note: no credential is named {string.Join(", ", unknown.Select(u => $"'{u}'"))} yet (fine for a router name in routes.json).");
            }

            var created = await store.CreateKeyAsync(keyName, allowed, expiresAt, null, limits, ct)
                ?? throw new CliException(ExitCodes.Failure, $"A client key named '{keyName}' already exists.", $"Choose another name, or revoke it first: latchkey keys revoke {keyName}");
            app.Console.Out.WriteLine(created.Value);
            app.Console.Error.WriteLine($"Created client key '{keyName}' for {string.Join(", ", allowed)}{(expiresAt is { } x ? $", expiring {x:u}" : string.Empty)}{(limits is null ? string.Empty : $", limited to {ClientKeyLimits.Describe(limits)}")}.");
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
            var views = (await services.Store.ListKeysAsync(ct)).Select(k => new KeyView(k.Name, k.StateAt(now), k.Credentials, k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.MadeFor, KeyLimitsView.Of(k.Limits))).ToList();
            return CredentialCommands.PrintList(app, parse.GetValue(json), views, views, "No client keys yet. Create one with: latchkey keys create NAME --credential CREDENTIAL",
                ["NAME", "STATE", "ALLOWS", "FOR", "LIMITS", "CREATED", "EXPIRES"],
                v => [Markup.Escape(v.Name), v.State == "active" ? "[green]active[/]" : $"[red]{v.State}[/]", Markup.Escape(string.Join(", ", v.Credentials)), Markup.Escape(v.MadeFor ?? "-"), Markup.Escape(v.Limits?.Text ?? "-"), v.CreatedAt.ToString("u"), v.ExpiresAt?.ToString("u") ?? "-"]);
        });
    }

    private static Command Set(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The key to change." };
        var (rate, tokens, concurrent) = LimitOptions(canRemove: true);
        var command = new Command("set", "Change what a client key may spend; the gateway applies it within a second. Options not given stay as they are.") { name, rate, tokens, concurrent };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var keyName = parse.GetValue(name)!;
            var change = ParseLimits(parse, rate, tokens, concurrent);
            if (!change.Any)
            {
                throw new CliException(ExitCodes.Usage, "Nothing to change: give at least one of --rate, --tokens and --concurrent.",
                    $"For example: latchkey keys set {keyName} --rate 60/min (or --rate none to remove it).");
            }

            var (outcome, key) = await services.Store.SetKeyLimitsAsync(keyName, change.Apply, ct);
            return outcome switch
            {
                KeyLimitsOutcome.NotFound => throw new CliException(ExitCodes.NotFound, $"No active client key is named '{keyName}'.", "'latchkey keys list' shows the keys."),
                KeyLimitsOutcome.Tampered => throw new CliException(ExitCodes.Failure,
                    $"The client key '{keyName}' was changed outside Latchkey (its row does not match its seal), so it is refused and was not changed.",
                    $"Revoke it and create a new one: latchkey keys revoke {keyName}; then find out who can write the database."),
                _ => Done(key!),
            };

            int Done(ClientKey changed)
            {
                app.Console.Out.WriteLine($"Client key '{keyName}' is now limited to: {(changed.Limits is null ? "nothing (no limits)" : ClientKeyLimits.Describe(changed.Limits))}.");
                return ExitCodes.Success;
            }
        });
    }

    /// <summary>The three limit options; with <paramref name="canRemove"/> (for <c>set</c>) each also takes <c>none</c>.</summary>
    private static (Option<string?> Rate, Option<string?> Tokens, Option<string?> Concurrent) LimitOptions(bool canRemove)
    {
        var none = canRemove ? $", or '{ClientKeyLimits.None}' to remove the limit" : string.Empty;
        return (
            new Option<string?>("--rate") { Description = $"Requests per second, minute, hour or day, e.g. 60/min{none}." },
            new Option<string?>("--tokens") { Description = $"Tokens per UTC day (input and output, as the provider counts them), e.g. 2000000/day{none}." },
            new Option<string?>("--concurrent") { Description = $"Requests in flight at once, e.g. 4{none}." });
    }

    /// <summary>The limit options as given: each unchanged (not given), removed (<c>none</c>) or set.</summary>
    private static LimitChange ParseLimits(ParseResult parse, Option<string?> rate, Option<string?> tokens, Option<string?> concurrent)
    {
        static Change<T> Read<T>(string? text, string option, Func<string, (T? Value, string? Problem)> parse, string hint)
            where T : struct
        {
            if (text is null)
            {
                return default;
            }

            if (string.Equals(text.Trim(), ClientKeyLimits.None, StringComparison.OrdinalIgnoreCase))
            {
                return new Change<T>(true, null);
            }

            var (value, problem) = parse(text);
            return value is { } v ? new Change<T>(true, v) : throw new CliException(ExitCodes.Usage, $"{option}: {problem}", hint);
        }

        return new LimitChange(
            Read<RateLimit>(parse.GetValue(rate), "--rate", t => (ClientKeyLimits.ParseRate(t, out var p), p), ClientKeyLimits.RateHint),
            Read<long>(parse.GetValue(tokens), "--tokens", t => (ClientKeyLimits.ParseTokens(t, out var p), p), ClientKeyLimits.TokensHint),
            Read<int>(parse.GetValue(concurrent), "--concurrent", t => (ClientKeyLimits.ParseConcurrent(t, out var p), p), ClientKeyLimits.ConcurrentHint));
    }

    /// <summary>One limit option: whether it was given, and its value (null: remove the limit).</summary>
    private readonly record struct Change<T>(bool Given, T? Value)
        where T : struct
    {
        public T? ApplyTo(T? current) => Given ? Value : current;
    }

    /// <summary>The three options together.</summary>
    private sealed record LimitChange(Change<RateLimit> Rate, Change<long> Tokens, Change<int> Concurrent)
    {
        public bool Any => Rate.Given || Tokens.Given || Concurrent.Given;

        /// <summary>The limits after this change (null when none is left).</summary>
        public ClientKeyLimits? Apply(ClientKeyLimits? current) =>
            new ClientKeyLimits(Rate.ApplyTo(current?.Rate), Tokens.ApplyTo(current?.TokensPerDay), Concurrent.ApplyTo(current?.Concurrent)).OrNull();
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
/// <param name="Limits">What the key may spend; null when it has no limit.</param>
internal sealed record KeyView(string Name, string State, IReadOnlyList<string> Credentials, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt, string? MadeFor, KeyLimitsView? Limits);

/// <summary>A key's limits as <c>keys list --json</c> shows them; a limit the key does not have is null.</summary>
/// <param name="Rate">Requests per window as <c>--rate</c> takes it (<c>60/min</c>).</param>
/// <param name="TokensPerDay">Tokens per UTC day.</param>
/// <param name="Concurrent">Requests in flight at once.</param>
internal sealed record KeyLimitsView(string? Rate, long? TokensPerDay, int? Concurrent)
{
    /// <summary>The limits in one line, as the table shows them.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Text { get; init; } = "-";

    public static KeyLimitsView? Of(ClientKeyLimits? limits) =>
        limits is null ? null : new(limits.Rate?.ToString(), limits.TokensPerDay, limits.Concurrent) { Text = ClientKeyLimits.Describe(limits) };
}
