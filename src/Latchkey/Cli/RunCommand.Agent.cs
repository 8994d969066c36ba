using System.Diagnostics;
using Latchkey.Local;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>Running the agent, and <c>latchkey run</c> on a machine reached with <c>latchkey ssh</c>.</summary>
internal static partial class RunCommand
{
    /// <summary>The real keys of the providers Latchkey fronts, as their SDKs and agents read them.</summary>
    private static readonly string[] ProviderKeys = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY"];

    /// <summary>The libpq variables that hold or locate a PostgreSQL password.</summary>
    private static readonly string[] PostgresPasswords = ["PGPASSWORD", "PGPASSFILE"];

    /// <summary>
    /// Runs <paramref name="argv"/> with <paramref name="variables"/> set and <see cref="Withheld"/> removed from the
    /// environment it inherits, passing SIGTERM, SIGHUP and SIGQUIT on, and returns its exit code (127 when it
    /// cannot be started). <paramref name="api"/> is the agent's API shape; <paramref name="store"/> the
    /// <c>--store</c> value, if any (else <c>LATCHKEY_STORE</c> says which store Latchkey uses).
    /// </summary>
    internal static async Task<int> RunAgentAsync(string[] argv, IEnumerable<KeyValuePair<string, string>> variables, string api, string? store)
    {
        var spec = string.IsNullOrWhiteSpace(store) ? Environment.GetEnvironmentVariable(StoreSelector.StoreVariable) : store;
        Process child;
        try
        {
            child = AgentProcess.Start(argv, Withheld(api, spec is not null && PostgresLocation.Matches(spec.Trim())), variables)
                ?? throw new CliException(ExitCodes.Failure, $"Could not start '{argv[0]}'.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new CliException(127, $"Could not run '{argv[0]}': {ex.Message}.", "Check the command name and PATH.");
        }

        using (child)
        {
            return await AgentProcess.WaitPassingSignalsAsync(child);
        }
    }

    /// <summary>
    /// What the agent must not inherit: the real keys of the providers Latchkey fronts (its SDK would prefer them to
    /// the client key and go around the gateway, past every revocation), Latchkey's store and master-key settings
    /// (a PostgreSQL URL may carry the store's password), and, when the store is PostgreSQL, the libpq password
    /// variables Latchkey may log in with. <c>OPENAI_ORG_ID</c> goes too for an OpenAI-shaped agent. Everything else
    /// is kept; the variables <c>run</c> sets are added after.
    /// </summary>
    internal static IEnumerable<string> Withheld(string api, bool postgresStore)
    {
        IEnumerable<string> withheld = [.. ProviderKeys, StoreSelector.StoreVariable, StoreSelector.KeyFileVariable];
        if (postgresStore)
        {
            withheld = withheld.Concat(PostgresPasswords);
        }

        return api == "openai" ? withheld.Append("OPENAI_ORG_ID") : withheld;
    }

    /// <summary>
    /// <c>latchkey run</c> inside a <c>latchkey ssh</c> session: the gateway and the key come with the session
    /// (there is no store to mint one from here), so the agent gets the session key, pointed at the route asked
    /// for, or the one the session chose.
    /// </summary>
    private static Task<int> RunForwardedAsync(ForwardedGateway forwarded, string[] argv, string? credential, string? router, string? api)
    {
        if (api is not null and not ("anthropic" or "openai"))
        {
            throw new CliException(ExitCodes.Usage, $"--api '{api}' is not known.", "Use --api anthropic or --api openai.");
        }

        var target = router ?? credential ?? forwarded.Credential
            ?? throw new CliException(ExitCodes.Usage, "The forwarded gateway did not say which credential to use.", "Add --credential NAME (one the session key allows).");
        var plan = new Plan(target, (router is not null ? "/r/" : "/c/") + target, api ?? forwarded.Api ?? "anthropic", false);
        return RunAgentAsync(AgentArguments(argv, plan, forwarded.Url), Variables(plan, forwarded.Url, forwarded.Key), plan.Api, null);
    }
}
