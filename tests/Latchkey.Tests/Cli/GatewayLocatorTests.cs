using System.Diagnostics;
using Latchkey.Store;

namespace Latchkey.Tests.Cli;

/// <summary>
/// <c>latchkey env</c> (and <c>run</c>, <c>ssh</c>, <c>dashboard</c>) find or start the home's gateway. A gateway
/// started by hand holds the home's lock before it answers <c>/healthz</c>; the one they start in that moment stops
/// at once ("already running"), and they must wait for the hand-started one rather than give up.
/// </summary>
public sealed class GatewayLocatorTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Fact]
    public async Task EnsureRunning_HomeHeldByAGatewayStillStarting_WaitsForItAndUsesIt()
    {
        var added = await Processes.Latchkey(_home.Path, "sk-test-" + Guid.NewGuid().ToString("N") + "\n", "add", "api", "--upstream", "http://127.0.0.1:9", "--header", "x-api-key", "--format", "{secret}");
        Assert.True(added.ExitCode == 0, added.ToString());

        // A gateway "still starting": the home's lock is held, and nothing answers yet.
        var starting = new FileStream(Path.Combine(_home.Path, "gateway.lock"), StoreHome.PrivateFileOptions(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        using var env = Process.Start(Info("env", "--credential", "api", "--expires", "1h"))!;
        var envOut = env.StandardOutput.ReadToEndAsync();
        var envErr = env.StandardError.ReadToEndAsync();
        env.StandardInput.Close();
        Process? serve = null;
        try
        {
            // The gateway env started itself stops at once ("already running"); env must go on waiting.
            var log = Path.Combine(_home.Path, "gateway.log");
            async Task<bool> RanIntoTheLock() => File.Exists(log) && (await File.ReadAllTextAsync(log)).Contains("already running", StringComparison.Ordinal);
            await RealTime.UntilAsync(async () => await RanIntoTheLock() || env.HasExited, TimeSpan.FromSeconds(15));
            Assert.True(await RanIntoTheLock(), $"the gateway env started never ran into the lock: {(env.HasExited ? await envErr : "env still running")}");

            await RealTime.ForAsync(TimeSpan.FromSeconds(1.5)); // env polls every 0.1 s: old behaviour gave up by now
            Assert.False(env.HasExited, $"env gave up while the home was held: {(env.HasExited ? await envErr : string.Empty)}");

            // The hand-started gateway now gets going and answers.
            await starting.DisposeAsync();
            serve = Process.Start(Info("serve", "--no-socket"))!;
            serve.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await env.WaitForExitAsync(timeout.Token);

            Assert.True(env.ExitCode == 0, $"exit {env.ExitCode}: {await envErr}");
            var info = GatewayLocatorInfo();
            Assert.Equal(serve.Id, info.Pid);
            Assert.Contains($"export LATCHKEY_URL='{info.Url}'", await envOut, StringComparison.Ordinal);
        }
        finally
        {
            await starting.DisposeAsync();
            if (!env.HasExited)
            {
                env.Kill();
            }

            if (serve is not null)
            {
                serve.Kill();
                await serve.WaitForExitAsync();
                serve.Dispose();
            }
        }
    }

    private (int Pid, string Url) GatewayLocatorInfo()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(_home.Path, "gateway.json")))!;
        return ((int)json["pid"]!, (string)json["url"]!);
    }

    private ProcessStartInfo Info(params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, _home.Path, args);
        info.Environment["LATCHKEY_LISTEN"] = "127.0.0.1:0"; // many homes test at once: no fixed port
        return info;
    }
}
