using System.CommandLine;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tokens;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary>
/// The credential commands: <c>add</c>, <c>list</c>, <c>status</c>, <c>token</c>, <c>history</c>,
/// <c>restore</c>, <c>remove</c>.
/// </summary>
internal static class CredentialCommands
{
    public static IEnumerable<Command> Build(CliApp app) => [Add(app), List(app), Status(app), Token(app), History(app), Restore(app), Remove(app)];

    /// <summary>The NAME of an existing credential: completes with the store's names.</summary>
    private static Argument<string> NameArgument(string description)
    {
        var name = new Argument<string>("NAME") { Description = description };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        return name;
    }

    private static Option<bool> JsonOption() => new("--json") { Description = "Print JSON for scripts instead of a table." };

    private static Command Add(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The name to give the credential; it is how routes and commands refer to it." };
        var upstream = new Option<string?>("--upstream") { Description = "The upstream base URL the gateway forwards to (https, or http to this machine). Required unless --keep-settings." };
        var header = new Option<string>("--header") { Description = "The header the gateway puts the secret in.", DefaultValueFactory = _ => InjectionRule.Default.Header };
        var format = new Option<string>("--format") { Description = "The header's value, where {secret} stands for the secret.", DefaultValueFactory = _ => InjectionRule.Default.Format };
        var extra = new Option<string[]>("--extra-header") { Description = "A non-secret header to add to every upstream request, as 'Name: value' (repeatable), e.g. 'anthropic-version: 2023-06-01'.", AllowMultipleArgumentsPerToken = false };
        var replace = new Option<bool>("--replace") { Description = "Replace an existing credential's secret and settings; the old content is kept as a version." };
        var keepSettings = new Option<bool>("--keep-settings") { Description = "With --replace: replace only the secret, keeping the stored upstream, header, format, extra headers and insecure-http opt-in." };
        var insecure = InsecureHttpOption.Create();
        var command = new Command("add", "Add an API-key credential. The secret is read from standard input, or a prompt that does not echo.")
        {
            name, upstream, header, format, extra, replace, keepSettings, insecure,
        };
        command.SetAction(async (parse, ct) =>
        {
            var credentialName = parse.GetValue(name)!;
            if (CredentialNames.Validate(credentialName) is { } nameProblem)
            {
                throw new CliException(ExitCodes.Usage, nameProblem, "Choose a name like 'anthropic' or 'openai-work'.");
            }

            if (parse.GetValue(keepSettings))
            {
                if (!parse.GetValue(replace))
                {
                    throw new CliException(ExitCodes.Usage, "--keep-settings only goes with --replace.", $"Replace the secret of an existing key: latchkey add {credentialName} --replace --keep-settings");
                }

                if (parse.GetValue(upstream) is not null || parse.GetResult(header) is { Implicit: false } || parse.GetResult(format) is { Implicit: false }
                    || parse.GetValue(extra) is { Length: > 0 } || parse.GetValue(insecure))
                {
                    throw new CliException(ExitCodes.Usage, "--keep-settings keeps the stored upstream, header, format, extra headers and insecure-http opt-in, so it takes none of those options.",
                        "Drop them, or drop --keep-settings to set every setting again.");
                }

                return await ReplaceSecretAsync(app, parse, credentialName, ct);
            }

            if (parse.GetValue(upstream) is null)
            {
                throw new CliException(ExitCodes.Usage, "Option '--upstream' is required.",
                    $"Give the upstream base URL (latchkey add {credentialName} --upstream URL), or replace only the secret of an existing key: latchkey add {credentialName} --replace --keep-settings");
            }

            var allowInsecureHttp = parse.GetValue(insecure);
            var upstreamUri = InsecureHttpOption.Parse("--upstream", parse.GetValue(upstream), allowInsecureHttp);
            InsecureHttpOption.RequireNeeded(allowInsecureHttp, upstreamUri);

            var injection = new InjectionRule(parse.GetValue(header)!, parse.GetValue(format)!);
            if (injection.Validate() is { } injectionProblem)
            {
                throw new CliException(ExitCodes.Usage, $"--header/--format: {injectionProblem}");
            }

            var extraHeaders = ParseExtraHeaders(parse.GetValue(extra) ?? [], injection.Header);
            var secret = SecretInput.Read(app.Console, $"Secret for '{credentialName}' (input hidden): ");
            if (injection.Format.Contains(secret, StringComparison.Ordinal) || extraHeaders.Values.Any(v => v.Contains(secret, StringComparison.Ordinal)))
            {
                throw new CliException(ExitCodes.Usage, "The secret also appears in --format or --extra-header, which are stored in clear.", "Keep the secret out of those options; give it only on standard input.");
            }

            await using var services = app.Open(parse);
            var store = services.Store;
            var metadata = new CredentialMetadata { Upstream = upstreamUri.ToString().TrimEnd('/'), AllowInsecureHttp = allowInsecureHttp, Injection = injection, ExtraHeaders = extraHeaders };
            var created = await store.CreateAsync(new NewCredential(credentialName, CredentialKind.ApiKey, metadata, new CredentialSecrets { ApiKey = secret }), ct);
            if (created.Outcome == WriteOutcome.AlreadyExists)
            {
                if (!parse.GetValue(replace))
                {
                    throw new CliException(ExitCodes.Failure, $"A credential named '{credentialName}' already exists.",
                        $"Add --replace to replace its secret and settings (the old content is kept: 'latchkey history {credentialName}'), or choose another name.");
                }

                if (created.Record is { Kind: not CredentialKind.ApiKey })
                {
                    throw new CliException(ExitCodes.Failure, $"'{credentialName}' is an OAuth credential; --replace only replaces API keys.",
                        $"Sign in again with 'latchkey login {credentialName}', or remove it first.");
                }

                var updated = await store.UpdateAsync(credentialName, new CredentialPatch
                {
                    State = CredentialState.Ok,
                    Metadata = m => m with { Upstream = metadata.Upstream, AllowInsecureHttp = allowInsecureHttp, Injection = injection, ExtraHeaders = extraHeaders },
                    ApiKey = secret,
                }, WriteCondition.Version(created.Record!.Version), ct);
                var replaced = Replaced(updated, credentialName, "it");
                app.Console.Out.WriteLine($"Replaced '{credentialName}' (now version {replaced.Version}; the previous content is kept as version {created.Record.Version}).");
                return ExitCodes.Success;
            }

            app.Console.Out.WriteLine($"Added '{credentialName}': the gateway will send it to {metadata.Upstream} as '{injection.Header}: {injection.Format.Replace(InjectionRule.SecretPlaceholder, "<secret>", StringComparison.Ordinal)}'{(allowInsecureHttp ? $", over plain http ({InsecureHttpOption.Name})" : string.Empty)}.");
            app.Console.Out.WriteLine($"  Scripts and apiKeyHelper: latchkey token {credentialName}");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// <c>latchkey add NAME --replace --keep-settings</c>: stores a new secret for the existing API-key credential
    /// <paramref name="credentialName"/> (read as <c>add</c> reads it) and changes nothing else, so how the gateway sends
    /// it (upstream, header, format, extra headers) stays as it was; the state goes back to usable and the old content
    /// is kept as a version. Fails when the credential does not exist, is not an API key, or changes meanwhile.
    /// </summary>
    private static async Task<int> ReplaceSecretAsync(CliApp app, ParseResult parse, string credentialName, CancellationToken ct)
    {
        await using var services = app.Open(parse);
        var store = services.Store;
        var record = await store.GetAsync(credentialName, ct) ?? throw CliException.NotFound(credentialName);
        if (record.Kind != CredentialKind.ApiKey)
        {
            throw new CliException(ExitCodes.Failure, $"'{credentialName}' is an OAuth credential; --replace only replaces API keys.",
                $"Sign in again with 'latchkey login {credentialName}', or remove it first.");
        }

        var secret = SecretInput.Read(app.Console, $"New secret for '{credentialName}' (input hidden): ");
        if (record.Metadata.Injection.Format.Contains(secret, StringComparison.Ordinal) || record.Metadata.ExtraHeaders.Values.Any(v => v.Contains(secret, StringComparison.Ordinal)))
        {
            throw new CliException(ExitCodes.Usage, "The secret also appears in the stored format or an extra header, which are stored in clear.", "Check the secret you gave.");
        }

        var updated = await store.UpdateAsync(credentialName, new CredentialPatch { State = CredentialState.Ok, ApiKey = secret }, WriteCondition.Version(record.Version), ct);
        var replaced = Replaced(updated, credentialName, "its secret");
        app.Console.Out.WriteLine($"Replaced the secret of '{credentialName}' (now version {replaced.Version}; the previous content is kept as version {record.Version}); it is still sent to {record.Metadata.Upstream} as '{record.Metadata.Injection.Header}'.");
        return ExitCodes.Success;
    }

    /// <summary>The record a replacing write produced; a quarantined record or a concurrent change is a clear error
    /// (nothing was written). <paramref name="what"/> names what was being replaced ("it", "its secret").</summary>
    private static CredentialRecord Replaced(WriteResult updated, string credentialName, string what)
    {
        if (updated.Outcome == WriteOutcome.Quarantined)
        {
            throw new CliException(ExitCodes.NotUsable, $"'{credentialName}' is quarantined: {updated.Record?.Reason?.Message}",
                $"Remove it first ('latchkey remove {credentialName}'), or restore a readable version.");
        }

        if (!updated.Succeeded)
        {
            throw new CliException(ExitCodes.Failure, $"'{credentialName}' changed while {what} was being replaced ({updated.Outcome}); nothing was written.", "Run the command again.");
        }

        return updated.Record!;
    }

    private static Dictionary<string, string> ParseExtraHeaders(string[] values, string injectedHeader)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var value in values)
        {
            var colon = value.IndexOf(':', StringComparison.Ordinal);
            var headerName = colon > 0 ? value[..colon].Trim() : string.Empty;
            var headerValue = colon > 0 ? value[(colon + 1)..].Trim() : string.Empty;
            if (!HttpToken.IsToken(headerName))
            {
                throw new CliException(ExitCodes.Usage, "--extra-header takes 'Name: value' with a valid header name.", "For example: --extra-header 'anthropic-version: 2023-06-01'");
            }

            if (headerValue.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
            {
                throw new CliException(ExitCodes.Usage, $"--extra-header '{headerName}': the value contains CR, LF or NUL.", "Give a single-line value.");
            }

            if (string.Equals(headerName, injectedHeader, StringComparison.OrdinalIgnoreCase) || string.Equals(headerName, "Host", StringComparison.OrdinalIgnoreCase))
            {
                throw new CliException(ExitCodes.Usage, $"--extra-header '{headerName}' would clash with the injected credential or the upstream's Host.", "Drop that header.");
            }

            headers[headerName] = headerValue;
        }

        return headers;
    }

    private static Command List(CliApp app)
    {
        var json = JsonOption();
        var command = new Command("list", "List every credential with its kind, state and upstream.") { json };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var views = (await services.Store.ListAsync(ct)).Select(r => CredentialView.From(r, app.Time.GetUtcNow())).ToList();
            return PrintList(app, parse.GetValue(json), views, views, "No credentials yet. Add one with: latchkey add NAME --upstream URL",
                ["NAME", "KIND", "STATE", "UPSTREAM", "UPDATED"],
                v => [Markup.Escape(v.Name), v.Kind, StateMarkup(v.State), Markup.Escape(v.Upstream ?? "-"), v.UpdatedAt.ToString("u")]);
        });
    }

    private static Command Status(CliApp app)
    {
        var name = new Argument<string?>("NAME") { Description = "One credential to show; all when omitted.", Arity = ArgumentArity.ZeroOrOne };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        var json = JsonOption();
        var command = new Command("status", "Show each credential's state and, when it is not usable, why and what to do. With NAME, exits 3 when that credential is not usable.")
        {
            name, json,
        };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var store = services.Store;
            var now = app.Time.GetUtcNow();
            var only = parse.GetValue(name);
            IReadOnlyList<CredentialRecord> records;
            if (only is null)
            {
                records = await store.ListAsync(ct);
            }
            else
            {
                records = [await store.GetAsync(only, ct) ?? throw CliException.NotFound(only)];
            }

            var views = records.Select(r => CredentialView.From(r, now)).ToList();
            if (parse.GetValue(json))
            {
                WriteJson(app, views);
            }
            else if (views.Count == 0)
            {
                app.Console.Out.WriteLine("No credentials yet. Add one with: latchkey add NAME --upstream URL");
            }
            else
            {
                var table = NewTable("NAME", "STATE", "WHY / WHAT TO DO", "EXPIRES", "SCOPES (granted / requested)");
                foreach (var v in views)
                {
                    var why = v.Reason is null ? "-" : $"{Markup.Escape(v.Reason.Message)}\n[bold]Fix:[/] {Markup.Escape(v.Reason.Fix ?? "-")}";
                    if (v.LastUpstreamFailure is { } u)
                    {
                        why = (why == "-" ? string.Empty : why + "\n")
                            + $"[yellow]Last upstream failure[/] {u.At:u}: {Markup.Escape(u.Code)} ({u.Status}{(u.RequestId is null ? string.Empty : ", request-id " + Markup.Escape(u.RequestId))}): {Markup.Escape(u.Message)}"
                            + (u.Fix is null ? string.Empty : $"\n[bold]Fix:[/] {Markup.Escape(u.Fix)}");
                    }

                    var scopes = v.Scopes.Requested.Count == 0 && v.Scopes.Granted.Count == 0 ? "-" : $"{string.Join(' ', v.Scopes.Granted)} / {string.Join(' ', v.Scopes.Requested)}";
                    table.AddRow(Markup.Escape(v.Mcp is null ? v.Name : $"{v.Name} (mcp)"), StateMarkup(v.State), why, v.ExpiresAt?.ToString("u") ?? "never", Markup.Escape(scopes));
                }

                Render(app, table);
            }

            if (!parse.GetValue(json))
            {
                app.Console.Out.WriteLine($"Master key: {MasterKeyCommand.Locate(parse.GetValue(CliApp.StoreOption), parse.GetValue(CliApp.HomeOption)).Description}.");
            }

            return only is not null && CredentialStatusView.Derive(records[0], now).NeedsAttention ? ExitCodes.NotUsable : ExitCodes.Success;
        });
    }

    private static Command Token(CliApp app)
    {
        var name = NameArgument("The credential whose secret to print.");
        var command = new Command("token", "Print the credential's current secret and a newline, nothing else (for Claude Code's apiKeyHelper and scripts). Exits 3 with the reason when it is not usable, 4 when there is no such credential.")
        {
            name,
        };
        command.SetAction((parse, ct) => PrintTokenAsync(app, parse.GetValue(CliApp.StoreOption), parse.GetValue(CliApp.HomeOption), parse.GetValue(name)!, ct));
        return command;
    }

    /// <summary>
    /// <c>latchkey token NAME</c>: prints the current secret and a newline. Reached from the command tree, and
    /// directly by <see cref="TokenFastPath"/>, so both behave the same.
    /// </summary>
    public static async Task<int> PrintTokenAsync(CliApp app, string? storeUrl, string? home, string credentialName, CancellationToken ct)
    {
        await using var services = app.Open(storeUrl, home);
        var result = await services.Engine.GetAccessTokenAsync(credentialName, null, ct);
        var secret = result.Status switch
        {
            Tokens.TokenStatus.Ok => result.AccessToken!,
            Tokens.TokenStatus.NotFound => throw CliException.NotFound(credentialName),
            Tokens.TokenStatus.Quarantined => throw new CliException(ExitCodes.NotUsable, $"'{credentialName}' is quarantined: {result.Reason?.Message}", result.Reason?.Fix),
            Tokens.TokenStatus.NeedsAuth => throw new CliException(ExitCodes.NotUsable, $"'{credentialName}' needs sign-in: {result.Reason?.Message ?? "it is not usable."}", result.Reason?.Fix),
            _ => throw new CliException(ExitCodes.Failure, $"No token for '{credentialName}' right now: {result.Reason?.Message}", result.Reason?.Fix),
        };

        await app.Console.Out.WriteAsync(secret + "\n");
        await app.Console.Out.FlushAsync(ct);
        return ExitCodes.Success;
    }

    private static Command History(CliApp app)
    {
        var name = NameArgument("The credential whose saved versions to list.");
        var json = JsonOption();
        var command = new Command("history", "List a credential's saved earlier versions, which 'latchkey restore' can bring back.") { name, json };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var credentialName = parse.GetValue(name)!;
            var store = services.Store;
            var current = await store.GetAsync(credentialName, ct) ?? throw CliException.NotFound(credentialName);
            var versions = (await store.GetHistoryAsync(credentialName, ct))
                .Select(v => new VersionView(v.Version, RowCodec.StateText(v.State), v.WrittenAt, v.Readable, v.Tampered)).ToList();
            if (parse.GetValue(json))
            {
                WriteJson(app, versions);
                return ExitCodes.Success;
            }

            app.Console.Out.WriteLine($"'{credentialName}' is at version {current.Version} ({RowCodec.StateText(current.State)}).");
            if (versions.Count == 0)
            {
                app.Console.Out.WriteLine("No earlier versions are saved yet.");
                return ExitCodes.Success;
            }

            var table = NewTable("VERSION", "STATE", "WRITTEN", "RESTORABLE");
            foreach (var v in versions)
            {
                table.AddRow(v.Version.ToString(), v.State, v.WrittenAt.ToString("u"), v.Readable ? "yes" : v.Tampered ? "no (changed outside Latchkey)" : "no (cannot be decrypted)");
            }

            Render(app, table);
            return ExitCodes.Success;
        });
    }

    private static Command Restore(CliApp app)
    {
        var name = NameArgument("The credential to restore.");
        var version = new Option<long?>("--version") { Description = "The saved version to bring back (see 'latchkey history NAME'); default: the newest readable one." };
        var force = new Option<bool>("--force") { Description = "Restore even a version whose refresh token has since been rotated." };
        var command = new Command("restore", "Bring back a saved version of a credential, as a new version; what it replaces is kept in the history.") { name, version, force };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var credentialName = parse.GetValue(name)!;
            var store = services.Store;
            var current = await store.GetAsync(credentialName, ct) ?? throw CliException.NotFound(credentialName);
            var history = await store.GetHistoryAsync(credentialName, ct);
            var wanted = parse.GetValue(version);
            var target = wanted is { } n
                ? history.FirstOrDefault(v => v.Version == n) ?? throw new CliException(ExitCodes.NotFound, $"'{credentialName}' has no saved version {n}.", $"'latchkey history {credentialName}' lists the saved versions.")
                : history.FirstOrDefault(v => v.Readable) ?? throw new CliException(ExitCodes.NotFound, $"'{credentialName}' has no saved version that can be decrypted.", $"Remove it ('latchkey remove {credentialName}') and add it again.");
            if (target.Tampered)
            {
                throw new CliException(ExitCodes.NotUsable, $"Version {target.Version} of '{credentialName}' was changed outside Latchkey (it does not match its seal), so it cannot be restored.", $"'latchkey history {credentialName}' shows which versions are restorable; or remove it ('latchkey remove {credentialName}') and add it again.");
            }

            if (!target.Readable)
            {
                throw new CliException(ExitCodes.NotUsable, $"Version {target.Version} of '{credentialName}' cannot be decrypted, so it cannot be restored.", $"'latchkey history {credentialName}' shows which versions are restorable.");
            }

            if (current.Kind == CredentialKind.OAuth && current.RefreshTokenFingerprint is not null
                && !string.Equals(target.RefreshTokenFingerprint, current.RefreshTokenFingerprint, StringComparison.Ordinal) && !parse.GetValue(force))
            {
                throw new CliException(ExitCodes.Failure,
                    $"Version {target.Version} of '{credentialName}' holds a refresh token that has since been rotated; replaying it can make the server revoke the whole grant.",
                    $"Sign in again with 'latchkey login {credentialName}', or add --force to restore it anyway.");
            }

            var result = await store.RestoreAsync(credentialName, target.Version, WriteCondition.Version(current.Version), ct);
            return result.Outcome switch
            {
                WriteOutcome.Written => Done(app, $"Restored '{credentialName}' to the content of version {target.Version} (now version {result.Record!.Version}; the replaced content is kept as version {current.Version})."),
                WriteOutcome.ConditionFailed => throw new CliException(ExitCodes.Failure, $"'{credentialName}' changed while it was being restored; nothing was written.", "Run the command again."),
                WriteOutcome.Quarantined => throw new CliException(ExitCodes.NotUsable, $"Version {target.Version} of '{credentialName}' cannot be restored: {result.Record?.Reason?.Message}", $"'latchkey history {credentialName}' shows which versions are restorable."),
                _ => throw CliException.NotFound(credentialName),
            };
        });
    }

    private static Command Remove(CliApp app)
    {
        var name = NameArgument("The credential to remove, with all its saved versions.");
        var command = new Command("remove", "Remove a credential and its saved versions; an OAuth grant is revoked at its server first (RFC 7009).") { name };
        command.SetAction((parse, ct) => LoginCommands.RemoveAsync(app, parse, parse.GetValue(name)!, ct));
        return command;
    }

    private static int Done(CliApp app, string message)
    {
        app.Console.Out.WriteLine(message);
        return ExitCodes.Success;
    }

    internal static Table NewTable(params string[] headers)
    {
        var table = new Table().Border(TableBorder.Simple);
        foreach (var h in headers)
        {
            table.AddColumn(new TableColumn($"[bold]{h}[/]"));
        }

        return table;
    }

    internal static void Render(CliApp app, Table table)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(app.Console.Out),
            Ansi = app.Console.OutputIsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = app.Console.OutputIsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!app.Console.OutputIsTerminal)
        {
            console.Profile.Width = 200;
        }

        console.Write(table);
    }

    internal static string StateMarkup(string state) => state switch
    {
        "ok" => "[green]ok[/]",
        "expiring" => "[yellow]expiring[/]",
        _ => $"[red]{state}[/]",
    };

    private static readonly CliJsonContext Json = new(new JsonSerializerOptions(CliJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>
    /// What a list command prints: <paramref name="views"/> as JSON when <paramref name="json"/> (<c>--json</c>); else
    /// <paramref name="empty"/> when there are no <paramref name="rows"/>; else a table with <paramref name="headers"/>,
    /// one row of <paramref name="cells"/> (Spectre markup) per row. Returns the exit code, always success.
    /// </summary>
    internal static int PrintList<TView, TRow>(CliApp app, bool json, IReadOnlyList<TView> views, IReadOnlyList<TRow> rows, string empty, string[] headers, Func<TRow, string[]> cells)
    {
        if (json)
        {
            WriteJson(app, views);
        }
        else if (rows.Count == 0)
        {
            app.Console.Out.WriteLine(empty);
        }
        else
        {
            var table = NewTable(headers);
            foreach (var row in rows)
            {
                table.AddRow(cells(row));
            }

            Render(app, table);
        }

        return ExitCodes.Success;
    }

    internal static void WriteJson<T>(CliApp app, IReadOnlyList<T> items)
    {
        var typeInfo = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<IReadOnlyList<T>>)Json.GetTypeInfo(typeof(IReadOnlyList<T>))!;
        app.Console.Out.WriteLine(JsonSerializer.Serialize(items, typeInfo));
    }
}
