using System.Text;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Security.HostileServer;

/// <summary>
/// A hostile MCP server on the streamable HTTP transport, against the real stdio bridge (<c>latchkey mcp stdio</c>):
/// an error answer that quotes the access token it was sent must not hand the token to the MCP client through the
/// bridge's JSON-RPC error, and an answer far larger than any message must not be buffered whole.
/// </summary>
public sealed class McpServerAnswerTests : IAsyncLifetime
{
    private const string Token = "streamable-mcp-access-token-1234567890";
    private const string Initialize = """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""" + "\n";

    private HostileMcpServer _server = null!;
    private GatewayProcess _gateway = null!;

    public async Task InitializeAsync()
    {
        _server = await HostileMcpServer.StartAsync();
        _gateway = await GatewayProcess.StartAsync();
        await SecurityWorld.CreateAsync(_gateway.HomePath, "echo", CredentialKind.OAuth, SecurityWorld.McpServer(_server.Url + "/mcp"),
            new CredentialSecrets { AccessToken = Token, RefreshToken = "rt" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task StdioBridge_ServerErrorQuotesTheToken_ClientGetsTheErrorWithTheTokenMasked()
    {
        _server.Answer = async context =>
        {
            var presented = context.Request.Headers.Authorization.ToString();
            context.Response.StatusCode = 500;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync($$$"""{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal error for {{{presented}}}"}}""");
        };

        var run = await _gateway.Cli(Initialize, "mcp", "stdio", "echo");

        Assert.Contains(_server.Others, r => r.Bearer); // the server did receive the token: the echo is real
        Assert.Contains("answered HTTP 500: internal error for Bearer ***", run.Stdout, StringComparison.Ordinal);
        SecretAssert.Absent(run.Stdout + run.Stderr, "the bridge's output", ("access token", Token));
    }

    [Fact]
    public async Task StdioBridge_ServerAnswersWithAHugeJsonBody_RefusedWithAClearErrorNotPassedOn()
    {
        _server.Answer = async context =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            var chunk = Encoding.ASCII.GetBytes(new string(' ', 64 * 1024));
            await context.Response.WriteAsync("""{"jsonrpc":"2.0","id":1,"result":{"padding":""" + "\"");
            try
            {
                for (var sent = 0L; sent < 64L * 1024 * 1024 && !context.RequestAborted.IsCancellationRequested; sent += chunk.Length)
                {
                    await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                }

                await context.Response.WriteAsync("\"}}", context.RequestAborted);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                // the bridge stopped reading: what a bounded reader does
            }
        };

        var run = await _gateway.Cli(Initialize, "mcp", "stdio", "echo");

        Assert.Contains("larger than 8 MiB", run.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("padding", run.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", run.Stderr, StringComparison.OrdinalIgnoreCase);
    }
}
