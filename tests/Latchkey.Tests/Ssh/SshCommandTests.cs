using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Ssh;

/// <summary>
/// <c>latchkey ssh</c> against a real OpenSSH server (<see cref="SshServer"/>): the "remote" session runs as a
/// throwaway user in its own home, reaches the simulated upstream only through the forwarded gateway, and holds
/// nothing but the session key.
/// </summary>
public sealed class SshCommandTests : IAsyncLifetime
{
    private const string Request = """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""";

    /// <summary>A remote agent: curl, the key going from the environment to curl's configuration on standard input (never argv).</summary>
    private const string CurlOverTcp = $"""
        printf 'header = "x-api-key: %s"\n' "$ANTHROPIC_AUTH_TOKEN" | curl -sS --fail-with-body -K - -X POST "$ANTHROPIC_BASE_URL/v1/messages" -H 'content-type: application/json' -d '{Request}'; echo; echo "tcp-exit=$?"
        """;

    private readonly SimulatedUpstream _upstream = new();
    private readonly string _secret = "sk-ant-api03-" + Guid.NewGuid().ToString("N");
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        await _upstream.StartAsync();
        _gateway = await GatewayProcess.StartAsync();
        await _gateway.AddApiKeyAsync("anthropic", _upstream.Url, _secret, "--header", "x-api-key", "--format", "{secret}", "--extra-header", "anthropic-version: 2023-06-01");
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [SkippableSshFact]
    public async Task Ssh_RemoteCurl_ReachesUpstreamWithTheInjectedCredentialAndNoSecretLeaves()
    {
        await using var server = await SshServer.StartAsync();
        var remote = $"""
            {CurlOverTcp}
            printf 'header = "x-api-key: %s"\n' "$LATCHKEY_KEY" | curl -sS --fail-with-body -K - --unix-socket "$LATCHKEY_SOCKET" http://gateway/c/anthropic/v1/messages -H 'content-type: application/json' -d '{Request}'; echo; echo "socket-exit=$?"
            echo ==env==; env; echo ==end==
            echo READY; read line; echo "released $line"
            """;
        await using var session = LatchkeySsh.Start(_gateway.HomePath, ["--credential", "anthropic", "-F", server.ClientConfig, SshServer.HostAlias, "--", remote]);

        var before = await session.WaitForLineAsync("READY");
        var key = Value(before, "LATCHKEY_KEY");
        Assert.StartsWith("lk_", key, StringComparison.Ordinal);

        // While the session runs: no secret in any process's arguments (both ends are this machine), nor in any
        // file under the remote home.
        foreach (var cmdline in Directory.EnumerateDirectories("/proc").Select(p => Path.Combine(p, "cmdline")))
        {
            string args;
            try
            {
                args = await File.ReadAllTextAsync(cmdline);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            Assert.False(args.Contains(key, StringComparison.Ordinal), $"the session key is in the arguments of {cmdline}");
            Assert.False(args.Contains(_secret, StringComparison.Ordinal), $"the credential is in the arguments of {cmdline}");
        }

        var files = await server.RemoteFilesAsync();
        Assert.NotEmpty(files); // at least .ssh/authorized_keys: the scan sees the home
        foreach (var (path, bytes) in files)
        {
            var text = Encoding.UTF8.GetString(bytes);
            Assert.False(text.Contains(key, StringComparison.Ordinal), $"the session key is in {path}");
            Assert.False(text.Contains(_secret, StringComparison.Ordinal), $"the credential is in {path}");
        }

        await session.WriteLineAsync("go");
        var result = await session.WaitAsync();
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("released go", result.Stdout, StringComparison.Ordinal);

        // Both forwards reached the upstream, which saw the real credential, never the session key.
        Assert.Contains("tcp-exit=0", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("socket-exit=0", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, result.Stdout.Split('\n').Count(l => l.StartsWith('{') && (string?)JsonNode.Parse(l)?["type"] == "message"));
        Assert.Equal(2, _upstream.Requests.Count);
        Assert.All(_upstream.Requests, r => Assert.Equal(_secret, r.Credential));
        Assert.All(_upstream.Requests, r => Assert.DoesNotContain(r.Headers.Values, v => v.Contains(key, StringComparison.Ordinal)));

        // The remote environment: the gateway variables, the key only in the two key variables, no credential.
        var env = Section(result.Stdout, "==env==", "==end==");
        Assert.StartsWith("http://127.0.0.1:", Value(env, "ANTHROPIC_BASE_URL"), StringComparison.Ordinal);
        Assert.EndsWith("/c/anthropic", Value(env, "ANTHROPIC_BASE_URL"), StringComparison.Ordinal);
        Assert.Equal(key, Value(env, "ANTHROPIC_AUTH_TOKEN"));
        Assert.StartsWith(server.RemoteHome + "/.latchkey/ssh/", Value(env, "LATCHKEY_SOCKET"), StringComparison.Ordinal);
        Assert.Equal(["ANTHROPIC_AUTH_TOKEN", "LATCHKEY_KEY"], env.Split('\n').Where(l => l.Contains(key, StringComparison.Ordinal)).Select(l => l.Split('=')[0]).Order());
        Assert.DoesNotContain(_secret, result.All, StringComparison.Ordinal);

        // After the session: the key is refused, it is gone from the store, and the private folder is removed.
        await AssertRefusedAsync(key);
        Assert.DoesNotContain("ssh-", (await _gateway.Cli(null, "keys", "list", "--json")).Stdout, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(server.RemoteHome, ".latchkey", "ssh")));
    }

    [SkippableSshFact]
    public async Task Ssh_StreamLocalForwardingOff_FallsBackToTheLoopbackPortAndSaysSo()
    {
        await using var server = await SshServer.StartAsync("AllowStreamLocalForwarding no");

        await using var session = LatchkeySsh.Start(_gateway.HomePath, ["-F", server.ClientConfig, SshServer.HostAlias, "--", CurlOverTcp + "\necho \"socket=${LATCHKEY_SOCKET:-none}\""]);
        var result = await session.WaitAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("AllowStreamLocalForwarding", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("loopback TCP port", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("tcp-exit=0", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("socket=none", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(_secret, _upstream.Requests.Single().Credential);
    }

    [SkippableSshFact]
    public async Task Ssh_ForwardingOff_FailsNamingTheSettingsAndTheDeviceSignIn()
    {
        await using var server = await SshServer.StartAsync("AllowTcpForwarding no", "AllowStreamLocalForwarding no");

        await using var session = LatchkeySsh.Start(_gateway.HomePath, ["-F", server.ClientConfig, SshServer.HostAlias, "--", "echo ran-anyway"]);
        var result = await session.WaitAsync();

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("AllowTcpForwarding", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("AllowStreamLocalForwarding", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("latchkey login --device", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("ran-anyway", result.Stdout, StringComparison.Ordinal);
        Assert.Empty(_upstream.Requests);
        Assert.DoesNotContain("ssh-", (await _gateway.Cli(null, "keys", "list", "--json")).Stdout, StringComparison.Ordinal);
    }

    [SkippableSshFact]
    public async Task Ssh_RemotePortTaken_SaysTheCauseAndHowToAvoidIt()
    {
        await using var server = await SshServer.StartAsync();
        using var taken = new TcpListener(IPAddress.Loopback, 0); // the "remote" host is this machine
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        await using var session = LatchkeySsh.Start(_gateway.HomePath, ["--remote-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-F", server.ClientConfig, SshServer.HostAlias, "--", "echo ran-anyway"]);
        var result = await session.WaitAsync();

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"Port {port} is taken", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--remote-port", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("ran-anyway", result.Stdout, StringComparison.Ordinal);
    }

    [SkippableSshRunFact]
    public async Task Ssh_RemoteLatchkeyRun_UsesTheForwardedGateway()
    {
        await using var server = await SshServer.StartAsync();
        var remote = $"""
            export LATCHKEY_HOME="$HOME/unused-home" REQ='{Request}'
            unset ANTHROPIC_BASE_URL ANTHROPIC_AUTH_TOKEN
            '{Processes.LatchkeyExe}' run -- sh -c 'printf "header = \"x-api-key: %s\"\n" "$ANTHROPIC_AUTH_TOKEN" | curl -sS --fail-with-body -K - -X POST "$ANTHROPIC_BASE_URL/v1/messages" -H "content-type: application/json" -d "$REQ"'
            echo; echo "run-exit=$?"
            [ -e "$HOME/unused-home/latchkey.db" ] && echo "made-a-store" || echo "no-store"
            """;

        await using var session = LatchkeySsh.Start(_gateway.HomePath, ["-F", server.ClientConfig, SshServer.HostAlias, "--", remote]);
        var result = await session.WaitAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("run-exit=0", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("no-store", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(_secret, _upstream.Requests.Single().Credential);
    }

    [SkippableSshFact]
    public async Task Ssh_Sigterm_EndsTheSessionAndRevokesTheKey()
    {
        await using var server = await SshServer.StartAsync();
        await using var session = LatchkeySsh.Start(_gateway.HomePath, ["-F", server.ClientConfig, SshServer.HostAlias, "--", "echo \"key=$LATCHKEY_KEY\"; echo READY; sleep 60"]);
        var key = Value(await session.WaitForLineAsync("READY"), "key");

        session.Signal(15);
        var result = await session.WaitAsync();

        Assert.NotEqual(0, result.ExitCode);
        await AssertRefusedAsync(key);
        Assert.DoesNotContain("ssh-", (await _gateway.Cli(null, "keys", "list", "--json")).Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ssh_NoSshBinary_SaysToInstallTheOpenSshClient()
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, _gateway.HomePath, ["ssh", "devbox", "--", "true"]);
        info.Environment["PATH"] = "/nonexistent";
        info.Environment.Remove("LATCHKEY_SSH");
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("openssh-client", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-f")]
    [InlineData("-N")]
    [InlineData("-S")]
    public async Task Ssh_OptionThatWouldBreakTheSession_IsAUsageErrorSayingWhy(string option)
    {
        var result = await _gateway.Cli(null, "ssh", option, "x", "devbox");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(option, result.Stderr, StringComparison.Ordinal);
    }

    private async Task AssertRefusedAsync(string key)
    {
        // The gateway process caches a key check for a second of its clock: allow a little more.
        var status = await RealTime.UntilAsync(
            async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/c/anthropic/v1/messages") { Content = new StringContent(Request, Encoding.UTF8, "application/json") };
                request.Headers.Add("x-api-key", key);
                using var response = await _gateway.Http.SendAsync(request);
                return response.StatusCode;
            },
            s => s == HttpStatusCode.Unauthorized, TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(200));
        Assert.True(status == HttpStatusCode.Unauthorized, $"the session key still works after the session ended ({status})");
    }

    private static string Section(string text, string from, string to)
    {
        var start = text.IndexOf(from, StringComparison.Ordinal) + from.Length;
        return text[start..text.IndexOf(to, start, StringComparison.Ordinal)];
    }

    private static string Value(string env, string name) =>
        env.Split('\n').Select(l => l.Split('=', 2)).Single(p => p.Length == 2 && p[0] == name)[1].Trim();
}
