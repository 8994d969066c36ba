using System.CommandLine;
using Latchkey.Local;
using Latchkey.Mcp;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey mcp add|list|remove|stdio|config|install</c>: remote MCP servers behind OAuth, each signed into once and kept
/// as its own record (the grant bound to the authorization server's issuer and the server's resource URI).
/// </summary>
internal static class McpCommands
{
    public static Command Build(CliApp app) =>
        new Command("mcp", "Remote MCP servers behind OAuth: sign in once, reach them through the gateway (/mcp/NAME) or a stdio bridge.") { Add(app), List(app), Remove(app), Stdio(app), Config(app), Install(app) };

    private static Command Add(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "A name for the server, e.g. 'linear'; the proxy serves it at /mcp/NAME." };
        var url = new Argument<string>("URL") { Description = "The MCP server's URL (its Streamable HTTP endpoint, or the legacy SSE URL)." };
        var scope = new Option<string[]>("--scope") { Description = "Scopes to ask for (repeatable, or space-separated); default: what the server's 401 challenge asks for.", AllowMultipleArgumentsPerToken = true };
        var clientId = new Option<string?>("--client-id") { Description = "A client id registered with the authorization server by hand." };
        var secretStdin = new Option<bool>("--client-secret-stdin") { Description = "Read that client's secret from standard input." };
        var cimd = new Option<string?>("--client-metadata-url") { Description = "An https Client ID Metadata Document URL to use as the client id." };
        var device = new Option<bool>("--device") { Description = "Sign in with a code on another device (RFC 8628)." };
        var noBrowser = new Option<bool>("--no-browser") { Description = "Print the sign-in URL on standard error instead of opening a browser." };
        var transport = new Option<string?>("--transport") { Description = "streamable-http (default) or sse (the legacy HTTP+SSE transport; the default when the URL's path ends in /sse)." };
        var insecure = InsecureHttpOption.Create();
        var command = new Command("add", "Probe an MCP server, discover its authorization server from the 401 challenge (RFC 9728), register, sign in and keep the grant.")
        {
            name, url, scope, clientId, secretStdin, cimd, device, noBrowser, transport, insecure,
        };
        command.SetAction(async (parse, ct) =>
        {
            var serverName = parse.GetValue(name)!;
            if (CredentialNames.Validate(serverName) is { } nameProblem)
            {
                throw new CliException(ExitCodes.Usage, nameProblem);
            }

            var allowInsecureHttp = parse.GetValue(insecure);
            var serverUrl = InsecureHttpOption.Parse("URL", parse.GetValue(url), allowInsecureHttp);
            InsecureHttpOption.RequireNeeded(allowInsecureHttp, serverUrl);

            var chosen = parse.GetValue(transport) ?? (serverUrl.AbsolutePath.EndsWith("/sse", StringComparison.Ordinal) ? McpTransports.Sse : McpTransports.StreamableHttp);
            if (chosen is not (McpTransports.StreamableHttp or McpTransports.Sse))
            {
                throw new CliException(ExitCodes.Usage, $"--transport '{chosen}' is not one Latchkey speaks.", "Use --transport streamable-http or --transport sse.");
            }

            await using var services = app.Open(parse);
            var store = services.Store;
            if (await store.GetAsync(serverName, ct) is not null)
            {
                throw new CliException(ExitCodes.Failure, $"'{serverName}' already exists; nothing was changed.", $"Sign in to it again with 'latchkey login {serverName}', or remove it first: latchkey mcp remove {serverName}");
            }

            var secret = parse.GetValue(secretStdin) ? SecretInput.Read(app.Console, "Client secret (input hidden): ") : null;
            var options = new SignInOptions
            {
                Name = serverName,
                Resource = serverUrl,
                Upstream = serverUrl.OriginalString,
                Client = parse.GetValue(clientId) is not null || parse.GetValue(cimd) is not null
                    ? new ClientChoice(parse.GetValue(clientId), secret, null, parse.GetValue(cimd))
                    : ClientChoice.Dynamic,
                Scopes = parse.GetValue(scope)?.SelectMany(s => s.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList(),
                Device = parse.GetValue(device),
                McpTransport = chosen,
                AllowInsecureHttp = allowInsecureHttp,
            };
            var record = await LoginCommands.SignInAsync(app, parse, services, options, parse.GetValue(noBrowser), "Nothing was stored.", ct);
            var m = record.Metadata;
            app.Console.Out.WriteLine($"Added MCP server '{record.Name}' ({m.McpTransport}) at {m.Upstream}, signed in at {m.Issuer}.");
            app.Console.Out.WriteLine($"  resource: {m.Resource}; scopes granted: {(m.ScopesGranted.Count == 0 ? "(none named)" : string.Join(' ', m.ScopesGranted))}.");
            app.Console.Out.WriteLine($"  Next: latchkey mcp install {record.Name} --client claude-code   (or claude-desktop, cursor, vscode, codex)");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command List(CliApp app)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON (the status --json objects of the MCP servers)." };
        var command = new Command("list", "List the MCP servers added with 'latchkey mcp add'.") { json };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var now = app.Time.GetUtcNow();
            var servers = (await services.Store.ListAsync(ct)).Where(r => r.Metadata.McpTransport is not null).OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
            return CredentialCommands.PrintList(app, parse.GetValue(json), servers.Select(r => CredentialView.From(r, now)).ToList(), servers, "No MCP servers yet. Add one with: latchkey mcp add NAME URL",
                ["NAME", "STATE", "TRANSPORT", "URL", "SCOPES"],
                r => [Markup.Escape(r.Name), StateMarkup(r, now), r.Metadata.McpTransport!, Markup.Escape(r.Metadata.Upstream ?? "-"), Markup.Escape(string.Join(' ', r.Metadata.ScopesGranted))]);
        });
    }

    private static Command Remove(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The MCP server to remove: its grant is revoked at the authorization server first." };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        var command = new Command("remove", "Revoke an MCP server's grant (RFC 7009) and remove its record.") { name };
        command.SetAction(async (parse, ct) =>
        {
            var serverName = parse.GetValue(name)!;
            await RequireMcpAsync(app, parse, serverName, ct);
            return await LoginCommands.RemoveAsync(app, parse, serverName, ct);
        });
        return command;
    }

    private static Command Stdio(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The MCP server to bridge to." };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        var command = new Command("stdio", "A stdio MCP server that forwards to the remote one with the stored grant: a drop-in for 'npx mcp-remote URL'. Logs go to standard error.") { name };
        return app.WithServices(command, async (parse, services, ct) =>
        {
            var serverName = parse.GetValue(name)!;
            var store = services.Store;
            var record = await store.GetAsync(serverName, ct) ?? throw CliException.NotFound(serverName);
            if (record.State == CredentialState.Quarantined)
            {
                throw new CliException(ExitCodes.NotUsable, $"'{serverName}' is quarantined: {record.Reason?.Message}", record.Reason?.Fix);
            }

            if (record.Metadata.McpTransport is null)
            {
                throw NotMcp(serverName);
            }

            if (!Uri.TryCreate(record.Metadata.Upstream, UriKind.Absolute, out _))
            {
                throw new CliException(ExitCodes.NotUsable, $"The stored URL of '{serverName}' is not a URL: {Http.UrlPolicy.Describe(Http.UrlVerdict.NotAbsolute, record.Metadata.Upstream)}", $"Add the server again: latchkey mcp remove {serverName}, then latchkey mcp add {serverName} URL");
            }
            await using var bridge = new McpStdioBridge(record, store, services.Engine, services.McpClient, app.Time, app.Console.Error);
            return await bridge.RunAsync(Console.OpenStandardInput(), Console.OpenStandardOutput(), ct);
        });
    }

    private static Command Config(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The MCP server." };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        var client = new Option<string>("--client") { Description = $"{McpClientConfig.Names}.", Required = true };
        var via = ViaOption();
        var gateway = GatewayOption();
        var command = new Command("config", "Print the configuration snippet an MCP client needs to reach the server through Latchkey ('latchkey mcp install' writes it into the client's file for you).") { name, client, via, gateway };
        command.SetAction(async (parse, ct) =>
        {
            var serverName = parse.GetValue(name)!;
            var target = ParseClient(parse.GetValue(client)!);
            var transport = ParseVia(parse.GetValue(via), target);
            await RequireMcpAsync(app, parse, serverName, ct);
            var exe = Environment.ProcessPath ?? "latchkey";
            string snippet;
            if (transport == "stdio")
            {
                snippet = McpClientConfig.Stdio(target, serverName, exe, BridgeEnvironment(parse));
            }
            else
            {
                var baseUrl = await GatewayUrlAsync(parse, gateway, ct);
                await using var services = app.Open(parse);
                var store = services.Store;
                var keyName = $"mcp-{serverName}-{McpClientConfig.Id(target)}-{app.Time.GetUtcNow():yyyyMMddHHmmss}";
                var created = await store.CreateKeyAsync(keyName, [serverName], null, McpClientConfig.Id(target), ct)
                    ?? throw new CliException(ExitCodes.Failure, $"A client key named '{keyName}' already exists.", "Run the command again in a second.");
                snippet = McpClientConfig.Http(target, serverName, $"{baseUrl}/mcp/{serverName}", created.Value);
                app.Console.Error.WriteLine($"Created client key '{keyName}' (allows only '{serverName}'); it is in the snippet below and shown only this once. Revoke with: latchkey keys revoke {keyName}");
                app.Console.Error.WriteLine("The gateway must be running: latchkey serve (or any 'latchkey run' starts it).");
            }

            app.Console.Error.WriteLine(McpClientConfig.Where(target, transport));
            app.Console.Out.WriteLine(snippet);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Install(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The MCP server (added with 'latchkey mcp add')." };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        var client = new Option<string>("--client") { Description = $"The client whose configuration to write: {McpClientConfig.Names}.", Required = true };
        var scope = new Option<string>("--scope") { Description = "user (default: the client's own file in your home folder) or project (the project file in the current folder: .mcp.json, .cursor/mcp.json, .vscode/mcp.json).", DefaultValueFactory = _ => "user" };
        var via = ViaOption();
        var gateway = GatewayOption();
        var remove = new Option<bool>("--remove") { Description = "Take the server out of the client's configuration again, and revoke the client key Latchkey made for it." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the change as a diff; write nothing, make and revoke no key." };
        var command = new Command("install", "Write the MCP server into the client's own configuration file (merged: every other entry, comment and setting stays; the previous file is kept as FILE.latchkey-backup).")
        {
            name, client, scope, via, gateway, remove, dryRun,
        };
        command.SetAction(async (parse, ct) =>
        {
            var serverName = parse.GetValue(name)!;
            if (CredentialNames.Validate(serverName) is { } nameProblem)
            {
                throw new CliException(ExitCodes.Usage, nameProblem.Replace("credential", "server", StringComparison.Ordinal), "'latchkey mcp list' shows the servers.");
            }

            var target = ParseClient(parse.GetValue(client)!);
            var transport = ParseVia(parse.GetValue(via), target);
            var chosenScope = parse.GetValue(scope) switch
            {
                "user" => McpConfigScope.User,
                "project" => McpConfigScope.Project,
                var other => throw new CliException(ExitCodes.Usage, $"--scope '{other}' is neither user nor project.", "Use --scope user or --scope project."),
            };
            var location = McpConfigLocation.For(target, chosenScope, McpConfigEnvironment.Current(), out var scopeProblem)
                ?? throw new CliException(ExitCodes.Usage, scopeProblem!, "Use --scope user.");
            var removing = parse.GetValue(remove);
            if (!removing)
            {
                await RequireMcpAsync(app, parse, serverName, ct);
            }

            var baseUrl = transport == "http" && !removing ? await GatewayUrlAsync(parse, gateway, ct) : string.Empty;
            await using var services = app.Open(parse);
            var request = new McpInstallRequest(serverName, target, location, transport, baseUrl, Environment.ProcessPath ?? "latchkey", removing, parse.GetValue(dryRun), BridgeEnvironment(parse));
            var result = await new McpInstaller(services.Store, app.Time).RunAsync(request, ct);
            var clientId = McpClientConfig.Id(target);
            if (request.DryRun)
            {
                app.Console.Out.Write(result.Diff);
                app.Console.Error.WriteLine(result.Outcome switch
                {
                    McpInstallOutcome.Unchanged => $"'{serverName}' is already in {location.Path} as it would be written; nothing would change.",
                    McpInstallOutcome.NotPresent => $"'{serverName}' is not in {location.Path}; nothing would change.",
                    _ => $"Dry run: nothing was written, and no client key was made or revoked.{(result.RevokedKeys.Count > 0 ? $" The real run revokes {string.Join(", ", result.RevokedKeys)}." : string.Empty)}",
                });
                return ExitCodes.Success;
            }

            switch (result.Outcome)
            {
                case McpInstallOutcome.Unchanged:
                    app.Console.Out.WriteLine($"'{serverName}' is already in {location.Path} for {clientId}; nothing changed.");
                    return ExitCodes.Success;
                case McpInstallOutcome.NotPresent:
                    app.Console.Out.WriteLine($"'{serverName}' is not in {location.Path}; nothing changed.");
                    return ExitCodes.Success;
                case McpInstallOutcome.Removed:
                    app.Console.Out.WriteLine($"Removed '{serverName}' from {location.Path}.");
                    break;
                default:
                    app.Console.Out.WriteLine($"{(result.Outcome == McpInstallOutcome.Added ? "Added" : "Updated")} '{serverName}' in {location.Path} for {clientId}, {(transport == "http" ? $"through the gateway at {baseUrl}/mcp/{serverName}" : $"through the stdio bridge ('latchkey mcp stdio {serverName}')")}.");
                    break;
            }

            if (result.MintedKey is not null)
            {
                app.Console.Out.WriteLine($"  Client key '{result.MintedKey}' was made for {clientId} and allows only '{serverName}'; it is in that file (mode 0600 when new) and nowhere else. 'latchkey keys list' shows it.");
                app.Console.Out.WriteLine("  The gateway must be running: latchkey serve (or any 'latchkey run' starts it).");
                if (location.SharedWithProject)
                {
                    app.Console.Error.WriteLine($"Note: {location.Path} is in the project and now holds a client key: keep it out of version control (add it to .gitignore).");
                }
            }

            foreach (var revoked in result.RevokedKeys)
            {
                app.Console.Out.WriteLine($"  Revoked client key '{revoked}', which the old entry carried.");
            }

            if (result.Backup is not null)
            {
                app.Console.Out.WriteLine($"  The previous file is kept as {result.Backup}.");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Option<string?> ViaOption() => new("--via")
    {
        Description = "stdio (the bridge command; the default for claude-desktop) or http (the gateway's /mcp/NAME with a new client key; the default for the others).",
    };

    private static Option<string?> GatewayOption() => new("--gateway")
    {
        Description = $"The gateway's base URL (default: the running gateway's, else http://127.0.0.1:{Gateway.GatewayOptions.DefaultPort}).",
    };

    /// <summary>
    /// What a stdio bridge started by a client (with the client's environment, not this shell's) needs to open this
    /// store: <c>LATCHKEY_HOME</c> when the home is not the default one, and the PostgreSQL store and its key file when
    /// one is in use. Never a secret: a store URL holds no password (PGPASSWORD or ~/.pgpass do).
    /// </summary>
    private static Dictionary<string, string> BridgeEnvironment(ParseResult parse)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption)).Path;
        var standard = StoreHome.Resolve(null, v => v == "HOME" ? Environment.GetEnvironmentVariable(v) : null).Path;
        if (!string.Equals(Path.GetFullPath(home), Path.GetFullPath(standard), StringComparison.Ordinal))
        {
            env["LATCHKEY_HOME"] = Path.GetFullPath(home);
        }

        var store = parse.GetValue(CliApp.StoreOption) ?? Environment.GetEnvironmentVariable(StoreSelector.StoreVariable);
        if (!string.IsNullOrWhiteSpace(store) && store != "sqlite")
        {
            env[StoreSelector.StoreVariable] = store;
            if (Environment.GetEnvironmentVariable(StoreSelector.KeyFileVariable) is { Length: > 0 } keyFile)
            {
                env[StoreSelector.KeyFileVariable] = Path.GetFullPath(keyFile);
            }
        }

        return env;
    }

    private static McpClient ParseClient(string value) =>
        McpClientConfig.Parse(value) ?? throw new CliException(ExitCodes.Usage, $"--client '{value}' is not one Latchkey knows.", $"Use --client {McpClientConfig.Names}.");

    /// <summary><c>--via</c>, or the client's default (<see cref="McpClientConfig.DefaultVia"/>).</summary>
    private static string ParseVia(string? value, McpClient client)
    {
        var transport = value ?? McpClientConfig.DefaultVia(client);
        return transport is "stdio" or "http"
            ? transport
            : throw new CliException(ExitCodes.Usage, $"--via '{transport}' is neither stdio nor http.", "Use --via stdio or --via http.");
    }

    /// <summary>The gateway's base URL: <c>--gateway</c>, else this home's running gateway, else the default port on loopback.</summary>
    private static async Task<string> GatewayUrlAsync(ParseResult parse, Option<string?> gateway, CancellationToken ct)
    {
        var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
        return (parse.GetValue(gateway) ?? (await GatewayLocator.FindHealthyAsync(home, ct))?.Url ?? $"http://127.0.0.1:{Gateway.GatewayOptions.DefaultPort}").TrimEnd('/');
    }

    private static async Task RequireMcpAsync(CliApp app, ParseResult parse, string name, CancellationToken ct)
    {
        await using var services = app.Open(parse);
        var store = services.Store;
        var record = await store.GetAsync(name, ct) ?? throw new CliException(ExitCodes.NotFound, $"No MCP server is named '{name}'.", "'latchkey mcp list' shows them; add one with: latchkey mcp add NAME URL");
        if (record.Metadata.McpTransport is null)
        {
            throw NotMcp(name);
        }
    }

    /// <summary>An MCP server's state as <c>mcp list</c> shows it: a working grant without every scope the server asked for is <c>needs-scope</c>.</summary>
    private static string StateMarkup(CredentialRecord r, DateTimeOffset now)
    {
        var status = CredentialStatusView.Derive(r, now);
        return !status.IsWorking ? $"[red]{status.Text}[/]"
            : McpView.From(r, r.Metadata.McpTransport!).ScopesMissing.Count > 0 ? "[red]needs-scope[/]"
            : $"[green]{status.Text}[/]";
    }

    private static CliException NotMcp(string name) =>
        new(ExitCodes.Usage, $"'{name}' is a credential, not an MCP server added with 'latchkey mcp add'.", $"Use 'latchkey remove {name}' / 'latchkey status {name}' for it, or add the MCP server under another name.");
}
