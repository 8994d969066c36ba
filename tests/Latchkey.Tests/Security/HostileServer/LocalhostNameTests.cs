using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// Whoever answers for a host name decides where a request to it goes. A name under <c>.localhost</c> looks like
/// this machine, but .NET resolves it like any other name: through <c>/etc/hosts</c> and the DNS servers of
/// <c>/etc/resolv.conf</c>, so a hostile name server on the network (played here by a line added to
/// <c>/etc/hosts</c>, which the resolver reads the same way) can point it at another machine. A credential whose
/// upstream is plain <c>http</c> to such a name would then travel in clear to that machine. The "other machine" is a
/// real server on a non-loopback address of this host, which records everything that reaches it.
/// </summary>
/// <remarks>Editing <c>/etc/hosts</c> needs root, as the test suite runs in CI; the line is removed again afterwards.</remarks>
public sealed class LocalhostNameTests : IAsyncLifetime
{
    private const string Secret = "sk-ant-api03-localhost-name-test-secret";

    private readonly SimulatedUpstream _elsewhere = new();
    private readonly string _name = "lk-" + Guid.NewGuid().ToString("N")[..12] + ".localhost";
    private HostsFileLine _hosts = null!;
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        var address = SecurityWorld.NonLoopbackAddress();
        await _elsewhere.StartAsync(0, address);
        _hosts = HostsFileLine.Add(address, _name);
        _gateway = await GatewayProcess.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _elsewhere.DisposeAsync();
        _hosts.Dispose();
    }

    [Fact]
    public async Task Forward_PlainHttpToANameUnderLocalhostThatResolvesElsewhere_RefusedAndNothingSentThere()
    {
        var port = new Uri(_elsewhere.Url).Port;
        var upstream = $"http://{_name}:{port}/sub";
        // The name really leads to the other machine: a request that is sent goes there.
        Assert.Contains((await Dns.GetHostAddressesAsync(_name)).Select(a => a.ToString()), a => _elsewhere.Url.Contains(a, StringComparison.Ordinal));
        await SecurityWorld.CreateAsync(_gateway.HomePath, "sub", CredentialKind.ApiKey, new CredentialMetadata { Upstream = upstream }, new CredentialSecrets { ApiKey = Secret });
        var key = await _gateway.CreateKeyAsync("agent", "sub");

        using var request = new HttpRequestMessage(HttpMethod.Post, "/c/sub/v1/messages")
        {
            Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Authorization", "Bearer " + key);
        using var response = await _gateway.Http.SendAsync(request);

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(_elsewhere.Requests.IsEmpty, $"the other machine received {_elsewhere.Requests.Count} request(s)");
        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"{(int)response.StatusCode} {body}");
        using var json = JsonDocument.Parse(body);
        Assert.Equal("upstream_url_refused", json.RootElement.GetProperty("latchkey").GetProperty("reason").GetString());
        Assert.Contains("--allow-insecure-http", json.RootElement.GetProperty("latchkey").GetProperty("fix").GetString(), StringComparison.Ordinal);
        SecretAssert.Absent(body + _gateway.Log, "the answer or the gateway's log", ("API key", Secret));
    }

    [Fact]
    public async Task Add_PlainHttpToANameUnderLocalhost_RefusedWithoutTheOptIn()
    {
        var result = await _gateway.Cli(Secret + "\n", "add", "zzsub", "--upstream", "http://zz.localhost:18081/sub");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("plain http to another machine", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--allow-insecure-http", result.Stderr, StringComparison.Ordinal);
        var listed = await _gateway.Cli(null, "list");
        Assert.DoesNotContain("zzsub", listed.Stdout, StringComparison.Ordinal);
    }

    /// <summary>One line added to <c>/etc/hosts</c> (which needs root), removed again on dispose, leaving every other line as it was.</summary>
    private sealed class HostsFileLine : IDisposable
    {
        private const string HostsFile = "/etc/hosts";
        private readonly string _line;

        private HostsFileLine(string line) => _line = line;

        public static HostsFileLine Add(IPAddress address, string name)
        {
            Assert.True(Environment.UserName == "root", "this test points a name at another address through /etc/hosts, which needs root (CI runs the tests as root)");
            var line = $"{address} {name}";
            var text = File.ReadAllText(HostsFile);
            File.AppendAllText(HostsFile, (text.EndsWith('\n') || text.Length == 0 ? string.Empty : "\n") + line + "\n");
            return new HostsFileLine(line);
        }

        public void Dispose()
        {
            var lines = File.ReadAllLines(HostsFile).Where(l => l != _line);
            File.WriteAllText(HostsFile, string.Join('\n', lines) + "\n");
        }
    }
}
