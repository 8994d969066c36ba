using System.Diagnostics;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// A caller on another machine can reach the gateway only if it listens beyond loopback. <c>latchkey serve</c> refuses
/// a non-loopback address, from <c>--listen</c> or from <c>LATCHKEY_LISTEN</c>, unless <c>--allow-remote</c> says it is
/// meant: it exits with a usage error naming the address and the option, before it listens or records anything.
/// </summary>
public sealed class RemoteListenTests
{
    [Theory]
    [InlineData("--listen", "0.0.0.0:0")]
    [InlineData("--listen", "[::]:0")]
    [InlineData("--listen", "192.0.2.10:7400")]
    [InlineData("LATCHKEY_LISTEN", "0.0.0.0:0")]
    public async Task Serve_NonLoopbackAddressWithoutAllowRemote_RefusedBeforeListening(string source, string address)
    {
        using var home = new TempHome();
        var environment = new Dictionary<string, string>();
        string[] args = ["serve"];
        if (source == "--listen")
        {
            args = ["serve", "--listen", address];
        }
        else
        {
            environment[source] = address;
        }

        var info = Processes.StartInfo(Processes.LatchkeyExe, home.Path, args);
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        using var serve = Process.Start(info)!;
        serve.StandardInput.Close();
        var stdout = serve.StandardOutput.ReadToEndAsync();
        var stderr = serve.StandardError.ReadToEndAsync();
        try
        {
            await serve.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            serve.Kill(entireProcessTree: true); // it listens: the refusal is gone
            throw;
        }

        var result = new Processes.Result(serve.ExitCode, await stdout, await stderr);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("is not a loopback address", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--allow-remote", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Latchkey gateway on", result.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(home.Path, "gateway.json")));
        Assert.False(File.Exists(Path.Combine(home.Path, "gateway.sock")));
    }
}
