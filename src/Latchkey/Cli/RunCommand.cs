using System.CommandLine;
using Latchkey.Local;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey run [--credential C | --router R] -- CMD ARGS</c> and <c>latchkey env</c>: point an agent at the
/// gateway. <c>run</c> makes sure a gateway is running, mints a client key for this run (revoked when CMD
/// exits), and runs CMD with the variables its SDK reads. <c>env</c> prints the same as <c>export</c> lines.
/// </summary>
internal static partial class RunCommand
{
    public static IEnumerable<Command> Build(CliApp app) => [Run(app), Env(app)];

    private static Option<string?> CredentialOption()
    {
        var option = new Option<string?>("--credential") { Description = "The credential the agent uses (default: the only one, when there is exactly one)." };
        CompletionCommand.CompleteCredentialNames(option.CompletionSources);
        return option;
    }

    private static Option<string?> RouterOption() => new("--router") { Description = "A model router from routes.json to use instead of one credential." };

    private static Option<string?> ApiOption() => new("--api") { Description = "The API shape the agent speaks: anthropic or openai (default: guessed from the credential)." };

    private static Command Run(CliApp app)
    {
        var credential = CredentialOption();
        var router = RouterOption();
        var api = ApiOption();
        var commandArgs = new Argument<string[]>("CMD") { Description = "The agent to run, and its arguments (after --).", Arity = ArgumentArity.OneOrMore };
        var command = new Command("run", "Run an agent against the gateway with a client key minted for this run: latchkey run --credential NAME -- claude")
        {
            credential, router, api, commandArgs,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (ForwardedGateway.FromEnvironment() is { } forwarded)
            {
                return await RunForwardedAsync(forwarded, parse.GetValue(commandArgs)!, parse.GetValue(credential), parse.GetValue(router), parse.GetValue(api));
            }

            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var plan = await PlanAsync(app, parse, home, parse.GetValue(credential), parse.GetValue(router), parse.GetValue(api), ct);
            var url = (await GatewayLocator.EnsureRunningAsync(home, TimeSpan.FromSeconds(20), ct, parse.GetValue(CliApp.StoreOption), app.Console.Error)).Url;
            var keyName = $"run-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
            await using var services = app.Open(parse);
            var store = services.Store;
            var created = await store.CreateKeyAsync(keyName, [plan.Target], app.Time.GetUtcNow() + TimeSpan.FromDays(1), ct)
                ?? throw new CliException(ExitCodes.Failure, "Could not mint a client key for this run.", "Try again.");
            try
            {
                return await RunAgentAsync(AgentArguments(parse.GetValue(commandArgs)!, plan, url), Variables(plan, url, created.Value), plan.Api, parse.GetValue(CliApp.StoreOption));
            }
            finally
            {
                await store.DeleteKeyAsync(keyName, CancellationToken.None);
            }
        });
        return command;
    }

    private static Command Env(CliApp app)
    {
        var credential = CredentialOption();
        var router = RouterOption();
        var api = ApiOption();
        var expires = new Option<string>("--expires") { Description = "How long the printed key works (default 12h).", DefaultValueFactory = _ => "12h" };
        var command = new Command("env", "Print 'export' lines that point an agent at the gateway, with a new client key: eval \"$(latchkey env --credential NAME)\"")
        {
            credential, router, api, expires,
        };
        command.SetAction(async (parse, ct) =>
        {
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var plan = await PlanAsync(app, parse, home, parse.GetValue(credential), parse.GetValue(router), parse.GetValue(api), ct);
            var lifetime = Durations.Parse(parse.GetValue(expires)!, "--expires");
            var url = (await GatewayLocator.EnsureRunningAsync(home, TimeSpan.FromSeconds(20), ct, parse.GetValue(CliApp.StoreOption), app.Console.Error)).Url;
            await using var services = app.Open(parse);
            var store = services.Store;
            var keyName = $"env-{plan.Target}-{Guid.NewGuid().ToString("N")[..6]}";
            var created = await store.CreateKeyAsync(keyName, [plan.Target], app.Time.GetUtcNow() + lifetime, ct)
                ?? throw new CliException(ExitCodes.Failure, "Could not mint a client key.", "Try again.");
            foreach (var (name, value) in Variables(plan, url, created.Value))
            {
                app.Console.Out.WriteLine($"export {name}='{value}'");
            }

            app.Console.Error.WriteLine($"# client key '{keyName}' expires in {parse.GetValue(expires)}; revoke it early with: latchkey keys revoke {keyName}");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>What the agent will be pointed at: a credential or router route, and the API it speaks.</summary>
    internal sealed record Plan(string Target, string RoutePrefix, string Api, bool UpstreamHasV1);

    internal static async Task<Plan> PlanAsync(CliApp app, ParseResult parse, StoreHome home, string? credential, string? router, string? api, CancellationToken ct)
    {
        if (api is not null and not ("anthropic" or "openai"))
        {
            throw new CliException(ExitCodes.Usage, $"--api '{api}' is not known.", "Use --api anthropic or --api openai.");
        }

        if (router is not null)
        {
            if (credential is not null)
            {
                throw new CliException(ExitCodes.Usage, "--credential and --router name two different things to use.", "Give one of them.");
            }

            return new Plan(router, "/r/" + router, api ?? "anthropic", false);
        }

        await using var services = app.Open(parse);
        var store = services.Store;
        CredentialRecord record;
        if (credential is null)
        {
            var all = await store.ListAsync(ct);
            if (all.Count != 1)
            {
                throw new CliException(ExitCodes.Usage,
                    all.Count == 0 ? "There are no credentials yet." : $"There are {all.Count} credentials; say which one the agent uses ({string.Join(", ", all.Select(r => r.Name))}).",
                    all.Count == 0 ? "Add one: latchkey add NAME --upstream URL" : "Add --credential NAME.");
            }

            record = all[0];
        }
        else
        {
            record = await store.GetAsync(credential, ct) ?? throw CliException.NotFound(credential);
        }

        _ = home;
        var upstream = record.Metadata.Upstream ?? string.Empty;
        return new Plan(record.Name, "/c/" + record.Name, api ?? GuessApi(record), upstream.TrimEnd('/').EndsWith("/v1", StringComparison.Ordinal));
    }

    /// <summary>Anthropic when the credential looks like it (x-api-key, anthropic-version, an anthropic host); else OpenAI.</summary>
    internal static string GuessApi(CredentialRecord record)
    {
        var m = record.Metadata;
        var anthropic = m.Injection.Header.Equals("x-api-key", StringComparison.OrdinalIgnoreCase)
            || m.ExtraHeaders.ContainsKey("anthropic-version")
            || (m.Upstream?.Contains("anthropic", StringComparison.OrdinalIgnoreCase) ?? false);
        return anthropic ? "anthropic" : "openai";
    }

    /// <summary>
    /// The agent's command line: as given, except for Codex on an OpenAI-shaped route, which takes its provider from
    /// its configuration and not from <c>OPENAI_BASE_URL</c>. For it, <c>-c</c> overrides go first: a provider
    /// <c>latchkey</c> on the gateway's route (the Responses API in plain HTTP requests, no WebSocket) that reads its key
    /// from <c>OPENAI_API_KEY</c>. No secret is on the command line: the key stays in the environment, named by
    /// <c>env_key</c>.
    /// </summary>
    internal static string[] AgentArguments(string[] argv, Plan plan, string url)
    {
        if (plan.Api != "openai" || argv.Length == 0 || Path.GetFileName(argv[0]) is not ("codex" or "codex.js"))
        {
            return argv;
        }

        var baseUrl = OpenAiBaseUrl(plan, url);
        return
        [
            argv[0],
            "-c", "model_provider=\"latchkey\"",
            "-c", $"model_providers.latchkey={{ name = \"Latchkey\", base_url = \"{baseUrl}\", env_key = \"OPENAI_API_KEY\", wire_api = \"responses\", supports_websockets = false }}",
            .. argv[1..],
        ];
    }

    private static string OpenAiBaseUrl(Plan plan, string url) => plan.UpstreamHasV1 ? url + plan.RoutePrefix : url + plan.RoutePrefix + "/v1";

    /// <summary>The variables an agent reads, for <paramref name="plan"/>.</summary>
    internal static List<KeyValuePair<string, string>> Variables(Plan plan, string url, string key)
    {
        var baseUrl = url + plan.RoutePrefix;
        var variables = new List<KeyValuePair<string, string>> { new("LATCHKEY_URL", url), new("LATCHKEY_KEY", key) };
        if (plan.Api == "anthropic")
        {
            variables.Add(new("ANTHROPIC_BASE_URL", baseUrl));
            variables.Add(new("ANTHROPIC_AUTH_TOKEN", key));
        }
        else
        {
            variables.Add(new("OPENAI_BASE_URL", OpenAiBaseUrl(plan, url)));
            variables.Add(new("OPENAI_API_KEY", key));
        }

        return variables;
    }
}
