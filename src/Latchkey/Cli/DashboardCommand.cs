using System.CommandLine;
using Latchkey.Dashboard;
using Latchkey.Local;
using Latchkey.OAuth;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey dashboard</c>: makes sure a gateway serves the home folder, mints a one-time sign-in link and opens
/// the dashboard with it (<c>http://127.0.0.1:PORT/ui/#token=…</c>: the token rides in the fragment, which the
/// browser never sends to a server or a proxy log).
/// </summary>
internal static class DashboardCommand
{
    public static void AddTo(RootCommand root, CliApp app)
    {
        var noBrowser = new Option<bool>("--no-browser") { Description = "Print the one-time sign-in link instead of opening a browser." };
        var command = new Command("dashboard", "Open the dashboard in the browser: every credential's state and reason, reconnect, remove, client keys.") { noBrowser };
        command.SetAction(async (parse, ct) =>
        {
            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            home.EnsureReady();
            var gateway = (await GatewayLocator.EnsureRunningAsync(home, TimeSpan.FromSeconds(30), ct, parse.GetValue(CliApp.StoreOption), app.Console.Error)).Url;
            if (!Uri.TryCreate(gateway, UriKind.Absolute, out var gatewayUri) || !System.Net.IPAddress.TryParse(gatewayUri.Host, out var address) || !System.Net.IPAddress.IsLoopback(address))
            {
                throw new CliException(ExitCodes.Failure, $"The gateway listens on {gateway}, not on a loopback address; the dashboard is served on 127.0.0.1 only.",
                    "Run a gateway on 127.0.0.1 for the dashboard: latchkey serve --listen 127.0.0.1:PORT");
            }

            var token = SignInLinks.Mint(home, app.Time);
            var link = new Uri($"{gateway}/ui/#token={token}");
            app.Console.Out.WriteLine($"Dashboard: {gateway}/ui/");
            app.Console.Out.Flush();
            new BrowserLauncher(app.Console.Error, parse.GetValue(noBrowser)).Open(link);
            app.Console.Error.WriteLine($"The link signs one browser in, once, within {SignInLinks.Lifetime.TotalMinutes:0} minutes.");
            return ExitCodes.Success;
        });
        root.Add(command);
    }
}
