using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Latchkey.Gateway;
using Latchkey.Local;
using Latchkey.Ssh;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey ssh [--credential NAME]... [ssh options] HOST [-- CMD]</c>: runs the system's <c>ssh</c> with the
/// local gateway forwarded to the remote host, and a remote environment that points agents at it with a client key
/// minted for this session (limited to the named credentials and in time, and revoked when ssh exits). No
/// credential leaves this machine. See <see cref="SshSession"/> for how, and docs/ssh.md.
/// </summary>
internal static class SshCommand
{
    public static Command Build(CliApp app)
    {
        var credentials = new Option<string[]>("--credential") { Description = "A credential the remote side may use (repeatable; the first is the one agents are pointed at). Default: the only one." };
        CompletionCommand.CompleteCredentialNames(credentials.CompletionSources);
        var router = new Option<string?>("--router") { Description = "A model router from routes.json to point agents at instead of a credential." };
        var api = new Option<string?>("--api") { Description = "The API shape the remote agent speaks: anthropic or openai (default: guessed from the credential)." };
        var expires = new Option<string>("--expires") { Description = "How long the session key works at most, even if latchkey ssh is killed (default 12h).", DefaultValueFactory = _ => "12h" };
        var remotePort = new Option<int>("--remote-port") { Description = "The loopback port on the remote host that leads to the gateway (default: a free one)." };
        var sshArgs = new Argument<string[]>("SSH_ARGS") { Description = "ssh options, the host, and the remote command (after --).", Arity = ArgumentArity.OneOrMore };
        var command = new Command("ssh", "Open an SSH session whose agents use this machine's credentials through the gateway, holding only a session key: latchkey ssh devbox -- claude")
        {
            credentials, router, api, expires, remotePort, sshArgs,
        };
        command.SetAction(async (parse, ct) =>
        {
            var (ssh, problem) = SshArguments.Parse(parse.GetValue(sshArgs) ?? []);
            if (ssh is null)
            {
                throw new CliException(ExitCodes.Usage, problem!, "Usage: latchkey ssh [--credential NAME] [ssh options] HOST [-- COMMAND]");
            }

            var port = parse.GetValue(remotePort);
            if (port is < 0 or > 65535)
            {
                throw new CliException(ExitCodes.Usage, $"--remote-port {port} is not a port.", "Give 1-65535, or leave it out for a free one.");
            }

            var sshExe = SshExecutable.Find();
            var lifetime = Durations.Parse(parse.GetValue(expires)!, "--expires");
            var names = (parse.GetValue(credentials) ?? []).Distinct(StringComparer.Ordinal).ToList();
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var plan = await RunCommand.PlanAsync(app, parse, home, names.FirstOrDefault(), parse.GetValue(router), parse.GetValue(api), ct);
            await using var services = app.Open(parse);
            var store = services.Store;
            foreach (var other in names.Skip(1))
            {
                _ = await store.GetAsync(other, ct) ?? throw CliException.NotFound(other);
            }

            var gateway = await GatewayLocator.EnsureRunningAsync(home, TimeSpan.FromSeconds(20), ct, parse.GetValue(CliApp.StoreOption), app.Console.Error);
            var target = Target(gateway);
            var id = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
            var keyName = "ssh-" + id;
            var allowed = names.Count > 0 ? names : [plan.Target];
            var created = await store.CreateKeyAsync(keyName, allowed, app.Time.GetUtcNow() + lifetime, ct)
                ?? throw new CliException(ExitCodes.Failure, "Could not mint a session key.", "Try again.");
            var control = Directory.CreateTempSubdirectory("lk-ssh-"); // 0700: the control socket lets anyone who can reach it use the connection
            try
            {
                var terminal = ssh.PseudoTerminal is null && app.Console.InputIsTerminal && app.Console.OutputIsTerminal;
                var session = new SshSession(sshExe, ssh, id, Path.Combine(control.FullName, "c"), target, port, terminal, app.Console.Error);

                // Ctrl-C reaches ssh directly (same process group, or as a keystroke in a terminal session): do
                // not die first. SIGTERM and SIGHUP sent to latchkey are passed on; the key is revoked after.
                using var relay = new SignalRelay(() => session.Master, PosixSignal.SIGTERM, PosixSignal.SIGHUP);
                return await session.RunAsync(endpoints => Environment(plan, endpoints, created.Value));
            }
            finally
            {
                await store.DeleteKeyAsync(keyName, CancellationToken.None);
                try
                {
                    control.Delete(recursive: true);
                }
                catch (IOException)
                {
                }
            }
        });
        return command;
    }

    /// <summary>The remote environment: what <c>latchkey run</c> gives an agent, with the forwarded addresses.</summary>
    internal static List<KeyValuePair<string, string>> Environment(RunCommand.Plan plan, RemoteEndpoints endpoints, string key)
    {
        var url = "http://127.0.0.1:" + endpoints.TcpPort.ToString(CultureInfo.InvariantCulture);
        var variables = RunCommand.Variables(plan, url, key);
        variables.Add(new(ForwardedGateway.CredentialVariable, plan.Target));
        variables.Add(new(ForwardedGateway.ApiVariable, plan.Api));
        if (endpoints.SocketPath is { } socket)
        {
            variables.Add(new(ForwardedGateway.SocketVariable, socket));
        }

        return variables;
    }

    /// <summary>The proven gateway's Unix socket when it has one (its permissions keep other local users out), else its TCP address.</summary>
    private static ForwardTarget Target(GatewayInfo gateway)
    {
        if (gateway.Socket is { } socket && !socket.Contains(':', StringComparison.Ordinal) && File.Exists(socket))
        {
            return new ForwardTarget(socket);
        }

        var uri = new Uri(gateway.Url);
        return new ForwardTarget($"{uri.Host}:{uri.Port.ToString(CultureInfo.InvariantCulture)}");
    }
}
