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
/// <remarks>
/// <b>Security.</b> The link is never an argument of a process (another local user could read it there and sign in
/// first): the browser is given a private redirect page (<see cref="BrowserLauncher"/>), which this command deletes
/// once the link was used or has expired, waiting until then. With <c>--no-browser</c> the link is printed on
/// standard error and nothing is written.
/// </remarks>
internal static class DashboardCommand
{
    public static Command Build(CliApp app)
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
            using var page = new BrowserLauncher(app.Console.Error, parse.GetValue(noBrowser), app.Time, BrowserLauncher.PageFolder(home)).Open(link, SignInLinks.Lifetime);
            app.Console.Error.WriteLine($"The link signs one browser in, once, within {SignInLinks.Lifetime.TotalMinutes:0} minutes.");
            if (page is null)
            {
                return ExitCodes.Success;
            }

            // The page holding the link is deleted as soon as the link is used, or once it expired.
            app.Console.Error.Flush();
            if (!await SignInLinks.WaitForUseAsync(home, token, app.Time, ct))
            {
                throw new CliException(ExitCodes.Failure, $"No browser used the sign-in link within {SignInLinks.Lifetime.TotalMinutes:0} minutes, so it expired.",
                    "Run latchkey dashboard again, or latchkey dashboard --no-browser to print a link to open by hand.");
            }

            app.Console.Error.WriteLine("The browser used the sign-in link.");
            return ExitCodes.Success;
        });
        return command;
    }
}
