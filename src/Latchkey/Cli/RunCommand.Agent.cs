using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Latchkey.Cli;

/// <summary>Running the agent, and <c>latchkey run</c> on a machine reached with <c>latchkey ssh</c>.</summary>
internal static partial class RunCommand
{
    /// <summary>
    /// Runs <paramref name="argv"/> with <paramref name="variables"/> set, passing SIGTERM, SIGHUP and SIGQUIT on,
    /// and returns its exit code (127 when it cannot be started).
    /// </summary>
    internal static async Task<int> RunAgentAsync(string[] argv, IEnumerable<KeyValuePair<string, string>> variables, string api)
    {
        var start = new ProcessStartInfo(argv[0]) { UseShellExecute = false };
        foreach (var a in argv.Skip(1))
        {
            start.ArgumentList.Add(a);
        }

        foreach (var (name, value) in variables)
        {
            start.Environment[name] = value;
        }

        // A real key in the environment would be preferred by the agent's SDK and bypass the gateway.
        start.Environment.Remove(api == "anthropic" ? "ANTHROPIC_API_KEY" : "OPENAI_ORG_ID");

        Process child;
        try
        {
            child = Process.Start(start) ?? throw new CliException(ExitCodes.Failure, $"Could not start '{argv[0]}'.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new CliException(127, $"Could not run '{argv[0]}': {ex.Message}.", "Check the command name and PATH.");
        }

        using (child)
        {
            // Ctrl-C in a terminal reaches the agent directly (same process group): do not die first, and
            // do not send it twice. SIGTERM, SIGHUP and SIGQUIT sent to latchkey are passed on.
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; NativeMethods.Kill(child.Id, Sigterm); });
            using var onHup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; NativeMethods.Kill(child.Id, Sighup); });
            using var onQuit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => { c.Cancel = true; NativeMethods.Kill(child.Id, Sigquit); });
            await child.WaitForExitAsync(CancellationToken.None);
            _ = Sigint;
            return child.ExitCode;
        }
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
        return RunAgentAsync(argv, Variables(plan, forwarded.Url, forwarded.Key), plan.Api);
    }
}
