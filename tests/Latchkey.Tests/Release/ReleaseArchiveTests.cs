using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Latchkey.Tests.Peers;
using Latchkey.UpstreamSim;
using Xunit.Abstractions;

namespace Latchkey.Tests.Release;

/// <summary>
/// The release archive's one executable (<c>./build.sh release</c>), run as a user who has no .NET: nothing from the
/// test's environment (no <c>DOTNET_*</c>, a <c>PATH</c> that is an empty folder), its own home folder. It adds a
/// credential, prints its token, serves the gateway with a request through it to the simulated upstream, and bridges
/// an MCP server over stdio (<c>mcp stdio</c>) for the real MCP SDK client.
/// </summary>
public sealed partial class ReleaseArchiveTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempHome _home = new();

    private string EmptyPath
    {
        get
        {
            var path = Path.Combine(_home.Root, "empty-bin");
            Directory.CreateDirectory(path);
            return path;
        }
    }

    public void Dispose() => _home.Dispose();

    [ReleaseFact]
    public async Task Archive_HoldsOneExecutableThatNeedsNoDotnet_AndPrintsVersionAndCommit()
    {
        var exe = await ReleaseArchive.ExecutableAsync();
        Assert.Equal(["README.md", "latchkey"], Directory.GetFiles(Path.GetDirectoryName(exe)!).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        // Linked only against the C library: no .NET host (libhostfxr) or runtime to find, no libe_sqlite3.so beside it.
        var ldd = await Processes.Run(new ProcessStartInfo("ldd", [exe]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true }, null);
        output.WriteLine(ldd.Stdout);
        Assert.DoesNotContain("not found", ldd.Stdout, StringComparison.Ordinal);
        Assert.DoesNotMatch("hostfxr|coreclr|sqlite|libstdc", ldd.Stdout);

        var version = await RunAsync(exe, null, "--version");

        Assert.Equal(0, version.ExitCode);
        Assert.Matches(VersionLine(), version.Stdout.Trim());
    }

    [ReleaseFact]
    public async Task AddTokenServe_InACleanEnvironment_ForwardsWithTheStoredKey()
    {
        var exe = await ReleaseArchive.ExecutableAsync();
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        var secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");

        var add = await RunAsync(exe, secret + "\n", "add", "anthropic", "--upstream", upstream.Url, "--header", "x-api-key", "--format", "{secret}");
        Assert.True(add.ExitCode == 0, add.ToString());
        var token = await RunAsync(exe, null, "token", "anthropic");
        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal(secret, token.Stdout.TrimEnd('\n'));
        var created = await RunAsync(exe, null, "keys", "create", "release-test", "--credential", "anthropic");
        Assert.True(created.ExitCode == 0, created.ToString());
        var key = created.Stdout.Trim();

        using var serve = Process.Start(ReleaseArchive.Clean(exe, _home.Path, EmptyPath, ["serve", "--listen", "127.0.0.1:0"]))!;
        try
        {
            serve.StandardInput.Close();
            var url = await ReadyUrlAsync(serve);
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(url) };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/c/anthropic/v1/messages")
            {
                Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", key);

            using var response = await http.SendAsync(request);

            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal("anthropic", response.Headers.GetValues("latchkey-credential").Single());
            Assert.Contains(upstream.Requests, r => r.Credential == secret && r.PathAndQuery == "/v1/messages");
        }
        finally
        {
            serve.Kill(entireProcessTree: true);
            await serve.WaitForExitAsync();
        }
    }

    [ReleaseFact]
    public async Task McpStdio_InACleanEnvironment_AnswersToolsCallForTheSdkClient()
    {
        var exe = await ReleaseArchive.ExecutableAsync();
        await using var world = await McpWorld.StartAsync(output);
        await world.AddAsync("tracker", world.Mcp.Url); // the OAuth sign-in, by the test build with its test browser

        var info = NodePeer.StartInfo("mcp/client.mjs");
        info.FileName = "/usr/bin/node"; // by path: the PATH below is empty
        info.ArgumentList.Add("stdio");
        info.ArgumentList.Add(exe);
        foreach (var a in new[] { "mcp", "stdio", "tracker" })
        {
            info.ArgumentList.Add(a);
        }

        ReleaseArchive.CleanEnvironment(info, world.Latchkey.Home, EmptyPath); // the client hands its environment on to latchkey
        info.Environment["MCP_CALLS"] = """[{"name":"whoami"}]""";
        using var client = Process.Start(info)!;
        client.StandardInput.Close();
        var stdout = client.StandardOutput.ReadToEndAsync();
        var stderr = client.StandardError.ReadToEndAsync();
        await client.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        var text = await stdout;
        output.WriteLine(text + "\n" + await stderr);

        using var result = JsonDocument.Parse(text.Split('\n').Last(l => l.StartsWith('{')));
        Assert.True(result.RootElement.GetProperty("ok").GetBoolean(), text);
        Assert.True(result.RootElement.GetProperty("calls")[0].GetProperty("ok").GetBoolean(), text);
    }

    private async Task<Processes.Result> RunAsync(string exe, string? stdin, params string[] args)
    {
        var result = await Processes.Run(ReleaseArchive.Clean(exe, _home.Path, EmptyPath, args), stdin);
        output.WriteLine($"$ latchkey {string.Join(' ', args)} -> exit {result.ExitCode}\n{result.Stderr.TrimEnd()}");
        return result;
    }

    private static async Task<string> ReadyUrlAsync(Process serve)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new StringBuilder();
        while (await serve.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            seen.AppendLine(line);
            if (ReadyLine().Match(line) is { Success: true } m)
            {
                _ = serve.StandardOutput.ReadToEndAsync(CancellationToken.None); // keep draining
                return m.Groups[1].Value;
            }
        }

        throw new InvalidOperationException($"latchkey serve exited before it was ready:\n{seen}\n{await serve.StandardError.ReadToEndAsync()}");
    }

    [GeneratedRegex(@"^Latchkey gateway on (http://[^\s]+)")]
    private static partial Regex ReadyLine();

    [GeneratedRegex(@"^latchkey \d+\.\d+\.\d+\S* \(commit [0-9a-f]{40}(-dirty)?\)$")]
    private static partial Regex VersionLine();
}
