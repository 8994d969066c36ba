using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Latchkey.Gateway;
using Latchkey.Hosting;
using Latchkey.Local;
using Latchkey.Observability;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary><c>latchkey serve</c>: runs the gateway in the foreground until Ctrl-C or SIGTERM.</summary>
internal static class ServeCommand
{
    /// <summary>Overrides the default listen address (<see cref="GatewayOptions.ListenVariable"/>).</summary>
    public const string ListenVariable = GatewayOptions.ListenVariable;

    /// <summary>How long audit entries are kept, when <c>--audit-retention</c> is not given.</summary>
    public const string AuditRetentionVariable = "LATCHKEY_AUDIT_RETENTION";

    public static Command Build(CliApp app)
    {
        var listen = new Option<string?>("--listen") { Description = $"HOST:PORT to listen on (default: ${ListenVariable}, else 127.0.0.1:{GatewayOptions.DefaultPort}; port 0 picks a free one)." };
        var socket = new Option<string?>("--socket") { Description = "The Unix socket to listen on as well (default: gateway.sock in the home folder)." };
        var noSocket = new Option<bool>("--no-socket") { Description = "Do not listen on a Unix socket." };
        var allowRemote = new Option<bool>("--allow-remote") { Description = "Allow a non-loopback --listen address (client keys are always required)." };
        var timeout = new Option<string?>("--upstream-timeout") { Description = "How long to wait for an upstream's response headers, e.g. 10m (default) or 30s." };
        var idle = new Option<string?>("--idle-timeout") { Description = "How long a request or response body may go without a byte moving (an idle upstream or agent) before the exchange is ended, e.g. 10m (default) or 30s." };
        var retention = new Option<string?>("--audit-retention") { Description = $"How long audit entries are kept, e.g. 30d (default, or ${AuditRetentionVariable}) or 12h; older ones are pruned periodically." };
        var metricsKey = new Option<string?>("--metrics-key-file") { Description = $"A file holding the metrics key (default: ${MetricsKey.FileVariable}): /metrics then answers only requests with 'Authorization: Bearer KEY', from anywhere. Without one, it answers only on this machine." };
        var command = new Command("serve", "Run the gateway: agents hold a client key, the gateway adds the real credential.")
        {
            listen, socket, noSocket, allowRemote, timeout, idle, retention, metricsKey,
        };
        command.SetAction(async (parse, ct) =>
        {
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var endpoint = ParseEndpoint(parse.GetValue(listen) ?? Environment.GetEnvironmentVariable(ListenVariable) ?? $"127.0.0.1:{GatewayOptions.DefaultPort}");
            if (!IPAddress.IsLoopback(endpoint.Address) && !parse.GetValue(allowRemote))
            {
                throw new CliException(ExitCodes.Usage, $"--listen {endpoint} is not a loopback address: anyone who can reach it could try client keys.",
                    "Add --allow-remote to mean it (put TLS in front; docs/gateway.md), or listen on 127.0.0.1.");
            }

            var metricsKeyFile = parse.GetValue(metricsKey) ?? (Environment.GetEnvironmentVariable(MetricsKey.FileVariable) is { Length: > 0 } f ? f : null);
            byte[]? metricsKeyDigest = null;
            if (metricsKeyFile is not null)
            {
                try
                {
                    metricsKeyDigest = MetricsKey.Load(metricsKeyFile);
                }
                catch (Diagnostics.ActionableException ex)
                {
                    throw new CliException(ExitCodes.Usage, ex.Message, ex.Fix);
                }
            }

            var proofKey = GatewayProof.NewKey(); // known to this process and gateway.json (0600) only
            var options = new GatewayOptions
            {
                Listen = endpoint,
                ProofKey = proofKey,
                Store = parse.GetValue(CliApp.StoreOption),
                AllowRemote = parse.GetValue(allowRemote),
                SocketPath = parse.GetValue(noSocket) ? null : parse.GetValue(socket) ?? Path.Combine(home.Path, "gateway.sock"),
                MetricsKeyDigest = metricsKeyDigest,
                UpstreamTimeout = parse.GetValue(timeout) is { } t ? Durations.Parse(t, "--upstream-timeout") : new GatewayOptions().UpstreamTimeout,
                IdleTimeout = parse.GetValue(idle) is { } i ? Durations.Parse(i, "--idle-timeout") : new GatewayOptions().IdleTimeout,
                AuditRetention = parse.GetValue(retention) is { } r ? Durations.Parse(r, "--audit-retention")
                    : Environment.GetEnvironmentVariable(AuditRetentionVariable) is { Length: > 0 } e ? Durations.Parse(e, AuditRetentionVariable)
                    : new GatewayOptions().AuditRetention,
            };

            home.EnsureReady();
            using var instanceLock = GatewayLocator.TryLockHome(home)
                ?? throw new CliException(ExitCodes.Failure, $"A gateway is already running on the home folder {home.Path} ({GatewayLocator.Describe(home)}).",
                    "Use it, or stop it first. 'latchkey run' finds it by itself.");

            if (StoreSelector.Choose(options.Store).Postgres?.TransportWarning() is { } transport)
            {
                app.Console.Error.WriteLine($"warning: {transport}");
            }

            await using var server = GatewayServer.Create(home, options, app.Time);
            try
            {
                await server.StartAsync(ct);
            }
            catch (IOException ex)
            {
                throw new CliException(ExitCodes.Failure, $"The gateway cannot listen on {endpoint}: {ex.Message}",
                    $"Another program uses that port: pick another with --listen 127.0.0.1:PORT (or set {ListenVariable}).");
            }

            var url = server.Addresses.Select(a => a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)).First(a => a.StartsWith("http://", StringComparison.Ordinal));
            url = url.Replace("://localhost", "://127.0.0.1", StringComparison.Ordinal).TrimEnd('/');
            GatewayLocator.WriteInfo(home, new GatewayInfo(url, options.SocketPath, Environment.ProcessId, app.Time.GetUtcNow(), GatewayProof.Encode(proofKey)));
            app.Console.Out.WriteLine($"Latchkey gateway on {url}{(options.SocketPath is { } s ? $" and unix:{s}" : string.Empty)} (home {home.Path})");
            app.Console.Out.WriteLine($"  Agents: latchkey run --credential NAME -- AGENT   (or base URL {url}/c/NAME with a key from 'latchkey keys create')");
            app.Console.Out.Flush();
            try
            {
                await server.WaitForShutdownAsync(ct);
            }
            finally
            {
                GatewayLocator.ClearInfo(home, Environment.ProcessId);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static IPEndPoint ParseEndpoint(string text)
    {
        var colon = text.LastIndexOf(':');
        if (colon > 0 && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 0 and <= 65535)
        {
            var host = text[..colon].Trim('[', ']');
            if (host == "localhost")
            {
                return new IPEndPoint(IPAddress.Loopback, port);
            }

            if (IPAddress.TryParse(host, out var address))
            {
                return new IPEndPoint(address, port);
            }
        }

        throw new CliException(ExitCodes.Usage, $"--listen '{text}' is not HOST:PORT with an IP address.", $"For example: --listen 127.0.0.1:{GatewayOptions.DefaultPort}");
    }
}
