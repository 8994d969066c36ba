using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Latchkey.Tests.Peers;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// <c>latchkey login</c> waits for the browser on a loopback port, which every process on the machine can reach.
/// Another local user's process sends it forged callbacks (a wrong state, no state, an <c>error</c>) and opens an
/// idle connection before the browser comes back from the real authorization server (npm oidc-provider): the sign-in must
/// ignore them, say so, and still finish when the real answer arrives.
/// </summary>
public sealed class SignInCallbackTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Login_ForgedCallbacksThenAnIdleConnection_IgnoredAndTheRealSignInSucceeds()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        var urlFile = Path.Combine(lk.TempHome.Root, "authorize-url");
        var go = Path.Combine(lk.TempHome.Root, "go");
        var browser = Path.Combine(lk.TempHome.Root, "browser.sh");
        // The person's browser: notes the authorization URL its page sends it to, then waits until the attacker has
        // had its go.
        await File.WriteAllTextAsync(browser, $"#!/bin/sh\n'{Processes.TestBrowserExe}' --follow \"$1\" > '{urlFile}.tmp' && mv '{urlFile}.tmp' '{urlFile}'\nwhile [ ! -e '{go}' ]; do sleep 0.05; done\nexec '{Processes.TestBrowserExe}' \"$1\"\n");
        File.SetUnixFileMode(browser, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var info = lk.StartInfo("login", "mcp", "--resource", lk.Peer.Resource);
        info.Environment["LATCHKEY_BROWSER"] = browser + " {url}";
        using var login = Process.Start(info)!;
        login.StandardInput.Close();
        var stdout = login.StandardOutput.ReadToEndAsync();
        var stderr = login.StandardError.ReadToEndAsync();
        try
        {
            async Task<bool> Opened() => File.Exists(urlFile) && (await File.ReadAllTextAsync(urlFile)).Length > 0;
            await RealTime.UntilAsync(async () => await Opened() || login.HasExited, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(50));
            Assert.True(await Opened(), $"login never opened a browser: {(login.HasExited ? await stderr : "still running")}");

            var redirect = new Uri(System.Web.HttpUtility.ParseQueryString(new Uri((await File.ReadAllTextAsync(urlFile)).Trim()).Query)["redirect_uri"]!);
            Assert.True(redirect.IsLoopback, redirect.ToString());

            // The attacker: forged answers, then a connection that sends nothing.
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
            foreach (var forged in new[] { "?code=forged&state=wrong", "?error=access_denied&state=wrong", "?code=forged", "?error=access_denied&error_description=gotcha" })
            {
                using var answer = await http.GetAsync(new Uri(redirect, forged));
                var page = await answer.Content.ReadAsStringAsync();
                Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
                Assert.True(page.Contains("ignored", StringComparison.Ordinal), $"the forged callback {forged} was not ignored; the listener answered: {System.Text.RegularExpressions.Regex.Replace(page, "<[^>]+>", " ")}");
                Assert.DoesNotContain("gotcha", page, StringComparison.Ordinal);
            }

            Assert.False(login.HasExited, $"a forged callback ended the sign-in: {(login.HasExited ? await stderr : string.Empty)}");
            using var idle = new TcpClient();
            await idle.ConnectAsync(IPAddress.Loopback, redirect.Port);

            // The person's browser now comes back with the real answer, while the idle connection is still open.
            await File.WriteAllTextAsync(go, "go");
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await login.WaitForExitAsync(timeout.Token);
            var err = await stderr;
            Assert.True(login.ExitCode == 0, $"exit {login.ExitCode}: {err}\nbrowser: {lk.ReadBrowserLog()}");
            Assert.Contains("Ignored a request to the sign-in listener", err, StringComparison.Ordinal);
            Assert.Equal("ok", Latchkey.Store.RowCodec.StateText((await lk.ReadAsync("mcp"))!.State));
            Assert.Equal(0, (await lk.TokenAsync("mcp")).ExitCode);
            _ = await stdout;
        }
        finally
        {
            if (!login.HasExited)
            {
                login.Kill(entireProcessTree: true);
            }
        }
    }
}
