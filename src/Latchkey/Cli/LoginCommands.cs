using System.CommandLine;
using Latchkey.Composition;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;

namespace Latchkey.Cli;

/// <summary><c>latchkey login</c> and <c>latchkey logout</c>: OAuth sign-in and sign-out.</summary>
internal static class LoginCommands
{
    public static IEnumerable<Command> Build(CliApp app) => [Login(app), Logout(app)];

    private static Command Login(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The name to keep the grant under (new, or an OAuth credential to sign in again)." };
        var resource = new Option<string?>("--resource") { Description = "The protected resource (API or MCP server URL); its metadata names the authorization server." };
        var issuer = new Option<string?>("--issuer") { Description = "The authorization server's issuer, when there is no resource metadata (or to pick one)." };
        var clientId = new Option<string?>("--client-id") { Description = "A client id registered with the server by hand." };
        var secretStdin = new Option<bool>("--client-secret-stdin") { Description = "Read the client's secret from standard input." };
        var authMethod = new Option<string?>("--client-auth") { Description = "How the pre-registered client authenticates: client_secret_basic (default with a secret), client_secret_post or none." };
        var cimd = new Option<string?>("--client-metadata-url") { Description = "An https Client ID Metadata Document URL to use as the client id, when the server supports it." };
        var scope = new Option<string[]>("--scope") { Description = "Scopes to ask for (repeatable, or space-separated); default: what the resource asks for.", AllowMultipleArgumentsPerToken = true };
        var device = new Option<bool>("--device") { Description = "Sign in with a code on another device (RFC 8628), for SSH and headless machines." };
        var noBrowser = new Option<bool>("--no-browser") { Description = "Print the sign-in URL on standard error instead of opening a browser." };
        var clientCredentials = new Option<bool>("--client-credentials") { Description = "A machine client: the client credentials grant, no user (needs --client-id and --client-secret-stdin)." };
        var upstream = new Option<string?>("--upstream") { Description = "Where the gateway forwards for this credential (default: the resource)." };
        var quirk = new Option<string[]>("--quirk") { Description = "A compatibility switch for a non-conforming server: assume_pkce_s256." };
        var insecure = InsecureHttpOption.Create();
        var command = new Command("login", "Sign in with OAuth 2.1 (PKCE, resource indicators, iss check) and keep the grant; the token engine refreshes it from then on.")
        {
            name, resource, issuer, clientId, secretStdin, authMethod, cimd, scope, device, noBrowser, clientCredentials, upstream, quirk, insecure,
        };
        command.SetAction(async (parse, ct) =>
        {
            var credentialName = parse.GetValue(name)!;
            if (CredentialNames.Validate(credentialName) is { } nameProblem)
            {
                throw new CliException(ExitCodes.Usage, nameProblem);
            }

            var allowInsecureHttp = parse.GetValue(insecure);
            var resourceUri = parse.GetValue(resource) is { } resourceText ? InsecureHttpOption.Parse("--resource", resourceText, allowInsecureHttp) : null;
            var upstreamUri = parse.GetValue(upstream) is { } upstreamText ? InsecureHttpOption.Parse("--upstream", upstreamText, allowInsecureHttp) : null;
            InsecureHttpOption.RequireNeeded(allowInsecureHttp, resourceUri, upstreamUri);

            if (parse.GetValue(clientCredentials) && (parse.GetValue(clientId) is null || !parse.GetValue(secretStdin)))
            {
                throw new CliException(ExitCodes.Usage, "--client-credentials needs --client-id and --client-secret-stdin.", "Pipe the client secret in: latchkey login NAME --issuer URL --client-credentials --client-id ID --client-secret-stdin < secret.txt");
            }

            var secret = parse.GetValue(secretStdin) ? SecretInput.Read(app.Console, "Client secret (input hidden): ") : null;
            var options = new SignInOptions
            {
                Name = credentialName,
                Resource = resourceUri,
                Issuer = parse.GetValue(issuer),
                Client = parse.GetValue(clientId) is { } id || parse.GetValue(cimd) is not null
                    ? new ClientChoice(parse.GetValue(clientId), secret, parse.GetValue(authMethod), parse.GetValue(cimd))
                    : ClientChoice.Dynamic,
                Scopes = parse.GetValue(scope)?.SelectMany(s => s.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList(),
                Device = parse.GetValue(device),
                ClientCredentials = parse.GetValue(clientCredentials),
                Upstream = parse.GetValue(upstream),
                Quirks = parse.GetValue(quirk) ?? [],
                AllowInsecureHttp = allowInsecureHttp,
            };

            await using var services = app.Open(parse);
            var record = await SignInAsync(app, parse, services, options, parse.GetValue(noBrowser), "Nothing was changed.", ct);
            var m = record.Metadata;
            app.Console.Out.WriteLine($"Signed in '{record.Name}' at {m.Issuer}.");
            app.Console.Out.WriteLine($"  scopes granted: {(m.ScopesGranted.Count == 0 ? "(none named)" : string.Join(' ', m.ScopesGranted))}; token valid until {m.ExpiresAt:u}{(record.Secrets.RefreshToken is null ? "; no refresh token was issued" : "; it is refreshed automatically")}.");
            app.Console.Out.WriteLine($"  Scripts and apiKeyHelper: latchkey token {record.Name}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Logout(CliApp app)
    {
        var name = new Argument<string>("NAME") { Description = "The credential to sign out of: its grant is revoked at the server, then removed." };
        CompletionCommand.CompleteCredentialNames(name.CompletionSources);
        var command = new Command("logout", "Revoke a credential's grant at its authorization server (RFC 7009), then remove it.") { name };
        command.SetAction((parse, ct) => RemoveAsync(app, parse, parse.GetValue(name)!, ct));
        return command;
    }

    /// <summary>
    /// Signs in with <paramref name="options"/> through <paramref name="services"/>, the browser opened unless
    /// <paramref name="noBrowser"/> (its redirect pages in the home folder <c>--home</c> chooses). An
    /// <see cref="OAuthException"/> becomes a <see cref="CliException"/> that keeps its message, ends its fix with
    /// <paramref name="unchanged"/> and the reason code, and exits as a usage error for the code <c>usage</c>.
    /// </summary>
    public static async Task<CredentialRecord> SignInAsync(CliApp app, ParseResult parse, LatchkeyServices services, SignInOptions options, bool noBrowser, string unchanged, CancellationToken ct)
    {
        var browser = new BrowserLauncher(app.Console.Error, noBrowser, app.Time, BrowserLauncher.PageFolder(StoreHome.Resolve(parse.GetValue(CliApp.HomeOption))));
        try
        {
            return await services.SignIn.SignInAsync(options, browser, app.Console.Error, ct);
        }
        catch (OAuthException ex)
        {
            throw new CliException(ex.Code == "usage" ? ExitCodes.Usage : ExitCodes.Failure, ex.Message, $"{unchanged} ('{ex.Code}')");
        }
    }

    /// <summary>Revokes (best-effort) then deletes exactly one record and its history.</summary>
    public static async Task<int> RemoveAsync(CliApp app, ParseResult parse, string credentialName, CancellationToken ct)
    {
        await using var services = app.Open(parse);
        var store = services.Store;
        var record = await store.GetAsync(credentialName, ct) ?? throw CliException.NotFound(credentialName);
        var revoked = await services.Engine.RevokeAsync(record, ct);
        if (!await store.RemoveAsync(credentialName, ct))
        {
            throw CliException.NotFound(credentialName);
        }

        app.Console.Out.WriteLine($"Removed '{credentialName}' and its saved versions{(revoked is null ? string.Empty : $"; its grant was {revoked}")}.");
        return ExitCodes.Success;
    }
}
