using System.CommandLine;
using Latchkey.Local;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey service install|uninstall|status</c>: keeps the gateway running as this user's service (a systemd
/// user unit, a launchd agent), so agents find it without a terminal holding <c>latchkey serve</c>.
/// </summary>
internal static class ServiceCommand
{
    public static Command Build(CliApp app)
    {
        var binary = new Option<string?>("--binary") { Description = "The latchkey executable the service runs (default: this one, unless it sits in a build or temporary folder)." };
        var print = new Option<bool>("--print") { Description = "Print the service file and where it would go; write and start nothing." };
        var install = new Command("install", "Install and start the gateway as a service of this user: a systemd user unit (Linux) or a launchd agent (macOS).") { binary, print };
        install.SetAction(async (parse, ct) =>
        {
            var manager = Manager(app);
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var exe = ServiceManager.ResolveBinary(parse.GetValue(binary), Environment.ProcessPath);
            var definition = manager.Define(exe, home, parse.GetValue(CliApp.StoreOption));
            if (parse.GetValue(print))
            {
                app.Console.Error.WriteLine($"# {manager.FilePath}");
                app.Console.Out.Write(manager.Render(definition));
                return ExitCodes.Success;
            }

            await manager.InstallAsync(definition, home, ct);
            return ExitCodes.Success;
        });

        var uninstall = new Command("uninstall", "Stop the gateway's service and remove its file.");
        uninstall.SetAction(async (_, ct) =>
        {
            await Manager(app).UninstallAsync(ct);
            return ExitCodes.Success;
        });

        var status = new Command("status", "Say whether the gateway's service is installed and running, which gateway commands use, and where it logs. Exit 0 when it runs.");
        status.SetAction(async (parse, ct) =>
        {
            var manager = Manager(app);
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            var output = app.Console.Out;
            var installedBinary = manager.InstalledBinary();
            var gateway = await GatewayLocator.FindHealthyAsync(home, ct);
            if (installedBinary is null && !File.Exists(manager.FilePath))
            {
                output.WriteLine($"service: not installed ({manager.FilePath}). Install it: latchkey service install");
                output.WriteLine(gateway is null ? "gateway: not running for this home" : $"gateway: {gateway.Url} (pid {gateway.Pid}), started outside a service");
                return ExitCodes.Failure;
            }

            output.WriteLine($"service: installed ({manager.FilePath})");
            if (installedBinary is not null)
            {
                output.WriteLine($"  runs: {installedBinary} serve{(File.Exists(installedBinary) ? string.Empty : "   (this file no longer exists: run 'latchkey service install' again from the installed latchkey)")}");
            }

            var state = await manager.QueryAsync(ct);
            output.WriteLine($"  state: {state.Description}{(state.Pid is { } pid ? $", pid {pid}" : string.Empty)}");
            output.WriteLine(gateway is null
                ? "gateway: not answering for this home"
                : $"gateway: {gateway.Url} (pid {gateway.Pid}){(state.Pid == gateway.Pid ? ", the service's: 'latchkey run' and the other commands use it" : ", started outside the service")}");
            output.WriteLine($"logs: {manager.Logs(installedBinary is null ? null : manager.Define(installedBinary, home))}");
            return state.Running ? ExitCodes.Success : ExitCodes.Failure;
        });

        return new Command("service", "Keep the gateway running as this user's service: install, uninstall, status.") { install, uninstall, status };
    }

    private static ServiceManager Manager(CliApp app) =>
        new(ServiceManager.CurrentPlatform(), Environment.GetEnvironmentVariable, app.Console.Out);
}
