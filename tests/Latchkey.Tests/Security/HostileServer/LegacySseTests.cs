using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Xunit.Abstractions;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// A hostile MCP server on the legacy HTTP+SSE transport, against the real gateway's MCP proxy and the real stdio
/// bridge: an event line that never ends must not grow Latchkey's memory (the stream is refused once it passes the
/// bound), and an <c>endpoint</c> event that is not a URL, or names another origin, is refused with a clear error
/// rather than an unhandled exception, and no request carrying the token is sent anywhere.
/// </summary>
public sealed class LegacySseTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Token = "legacy-mcp-access-token";

    /// <summary>How much the gateway's peak memory may grow while a server sends it one endless line.</summary>
    private const long MemoryBound = 128L * 1024 * 1024;

    private HostileMcpServer _server = null!;
    private GatewayProcess _gateway = null!;
    private string _key = null!;

    public async Task InitializeAsync()
    {
        _server = await HostileMcpServer.StartAsync();
        _gateway = await GatewayProcess.StartAsync();
        await SecurityWorld.CreateAsync(_gateway.HomePath, "legacy", CredentialKind.OAuth, SecurityWorld.McpServer(_server.Url + "/sse", "sse"),
            new CredentialSecrets { AccessToken = Token, RefreshToken = "rt" });
        _key = await _gateway.CreateKeyAsync("agent", "legacy");
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task McpProxy_ServerSendsAGibibyteLineBeforeTheEndpoint_RefusedWith502AndMemoryStaysBounded()
    {
        var baseline = PeakMemory(_gateway.Pid);
        _server.StopWhen = () => PeakMemory(_gateway.Pid) - baseline > 4 * MemoryBound; // keeps a run on broken code from eating the machine
        _server.Stream = (s, response, ct) => s.WriteEndlessAsync(response, (byte)'x', ct);

        using var response = await OpenAsync();
        var body = await response.Content.ReadAsStringAsync();

        var grown = PeakMemory(_gateway.Pid) - baseline;
        output.WriteLine($"the server wrote {_server.Sent / (1024 * 1024)} MiB (Kestrel accepts writes after a client hung up); the gateway's peak memory grew {grown / (1024 * 1024)} MiB");
        Assert.True(grown < MemoryBound, $"the gateway's peak memory grew {grown / (1024 * 1024)} MiB while the server sent {_server.Sent / (1024 * 1024)} MiB");
        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"{(int)response.StatusCode} {body}");
        Assert.Equal("mcp_stream_refused", Reason(body));
        Assert.Contains("larger than 8 MiB", body, StringComparison.Ordinal);
        await AssertGatewayStillServesAsync();
    }

    [Fact]
    public async Task McpProxy_ServerSendsAGibibyteLineAfterTheEndpoint_StreamEndsAndMemoryStaysBounded()
    {
        var baseline = PeakMemory(_gateway.Pid);
        _server.StopWhen = () => PeakMemory(_gateway.Pid) - baseline > 4 * MemoryBound;
        _server.Stream = async (s, response, ct) =>
        {
            await HostileMcpServer.WriteAsync(response, "event: endpoint\ndata: /messages?sessionId=s1\n\n", ct);
            await s.WriteEndlessAsync(response, (byte)'x', ct);
        };

        using var response = await OpenAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = await ReadUntilBrokenAsync(response);

        var grown = PeakMemory(_gateway.Pid) - baseline;
        output.WriteLine($"the server wrote {_server.Sent / (1024 * 1024)} MiB (Kestrel accepts writes after a client hung up); the gateway's peak memory grew {grown / (1024 * 1024)} MiB");
        Assert.True(grown < MemoryBound, $"the gateway's peak memory grew {grown / (1024 * 1024)} MiB while the server sent {_server.Sent / (1024 * 1024)} MiB");
        Assert.Contains("event: endpoint\ndata: /mcp/legacy/~/messages?sessionId=s1\n", received, StringComparison.Ordinal);
        Assert.Contains(": latchkey: The MCP server sent an event larger than 8 MiB", received, StringComparison.Ordinal);
        await AssertGatewayStillServesAsync();
    }

    [Theory]
    [InlineData("http://[::1", "not a URL")]
    [InlineData("https://attacker.example/steal", "another origin")]
    public async Task McpProxy_EndpointNotAUrlOnTheServersOrigin_RefusedWith502NamingWhy(string endpoint, string why)
    {
        _server.Stream = async (_, response, ct) =>
        {
            await HostileMcpServer.WriteAsync(response, $"event: endpoint\ndata: {endpoint}\n\n", ct);
            await Task.Delay(Timeout.Infinite, ct);
        };

        using var response = await OpenAsync();
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, $"{(int)response.StatusCode} {body}");
        Assert.Equal("mcp_stream_refused", Reason(body));
        using var json = JsonDocument.Parse(body);
        var message = json.RootElement.GetProperty("latchkey").GetProperty("message").GetString();
        Assert.Contains(why, message, StringComparison.Ordinal);
        Assert.Contains("its 'endpoint' event", message, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", _gateway.Log, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("UriFormatException", _gateway.Log, StringComparison.Ordinal);
        Assert.Empty(_server.Others);
        await AssertGatewayStillServesAsync();
    }

    [Theory]
    [InlineData("http://[::1", "not a URL")]
    [InlineData("https://attacker.example/steal", "another origin")]
    public async Task StdioBridge_EndpointNotAUrlOnTheServersOrigin_ExitsWithAClearErrorAndPostsNothing(string endpoint, string why)
    {
        _server.Stream = async (_, response, ct) =>
        {
            await HostileMcpServer.WriteAsync(response, $"event: endpoint\ndata: {endpoint}\n\n", ct);
            await Task.Delay(Timeout.Infinite, ct);
        };

        var run = await _gateway.Cli("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""" + "\n", "mcp", "stdio", "legacy");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("its 'endpoint' event", run.Stderr, StringComparison.Ordinal);
        Assert.Contains(why, run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", run.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(_server.Others);
        Assert.DoesNotContain(Token, run.Stdout + run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StdioBridge_ServerSendsAnEndlessEvent_RefusedWithAClearError()
    {
        _server.MaxBytes = 64L * 1024 * 1024; // a bridge on broken code would hold all of it: keep that survivable
        _server.Stream = async (s, response, ct) =>
        {
            await HostileMcpServer.WriteAsync(response, "event: endpoint\ndata: /messages?sessionId=s1\n\ndata: ", ct);
            await s.WriteEndlessAsync(response, (byte)'x', ct);
        };

        // Standard input stays open, as an MCP client keeps it: the bridge must end because the stream was refused.
        using var bridge = System.Diagnostics.Process.Start(Processes.StartInfo(Processes.LatchkeyExe, _gateway.HomePath, ["mcp", "stdio", "legacy"]))!;
        var stdout = bridge.StandardOutput.ReadToEndAsync();
        var stderr = bridge.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            try
            {
                await bridge.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                bridge.Kill(entireProcessTree: true);
                Assert.Fail($"the bridge kept running after its stream went bad:\n{await stderr}");
            }
        }

        Assert.Equal(1, bridge.ExitCode);
        var log = await stderr;
        Assert.Contains("larger than 8 MiB", log, StringComparison.Ordinal);
        Assert.Contains("the bridge stops", log, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, await stdout + log, StringComparison.Ordinal);
    }

    private async Task<HttpResponseMessage> OpenAsync()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/mcp/legacy");
        request.Headers.Add("Authorization", "Bearer " + _key);
        request.Headers.Add("Accept", "text/event-stream");
        return await _gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>Everything the stream delivered until it ended or broke.</summary>
    private static async Task<string> ReadUntilBrokenAsync(HttpResponseMessage response)
    {
        var text = new StringBuilder();
        var buffer = new byte[64 * 1024];
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync();
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                text.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
        }

        return text.ToString();
    }

    /// <summary>The proxy still works for the next client after refusing one.</summary>
    private async Task AssertGatewayStillServesAsync()
    {
        using var health = await _gateway.Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    /// <summary>A process's peak resident memory (VmHWM), in bytes.</summary>
    private static long PeakMemory(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    private static string? Reason(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.GetProperty("latchkey").GetProperty("reason").GetString();
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }
}
