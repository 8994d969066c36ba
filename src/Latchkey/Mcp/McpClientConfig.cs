using System.Text.Json;
using System.Text.Json.Nodes;

namespace Latchkey.Mcp;

/// <summary>The MCP clients <c>latchkey mcp config</c> writes a snippet for.</summary>
internal enum McpClient
{
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    VsCode,
}

/// <summary>
/// The configuration snippets of each MCP client (docs/mcp.md lists the sources): Claude Code's <c>.mcp.json</c>
/// and Cursor's <c>mcp.json</c> use a top-level <c>mcpServers</c> object (<c>type: "http"</c> + <c>url</c> +
/// <c>headers</c> for Claude Code, <c>url</c> + <c>headers</c> for Cursor); VS Code's <c>.vscode/mcp.json</c> uses
/// <c>servers</c> with <c>type: "http"</c> or <c>type: "stdio"</c>; Claude Desktop's
/// <c>claude_desktop_config.json</c> takes only stdio servers (<c>command</c> + <c>args</c>) from its file.
/// </summary>
internal static class McpClientConfig
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static McpClient? Parse(string text) => text switch
    {
        "claude-code" => McpClient.ClaudeCode,
        "claude-desktop" => McpClient.ClaudeDesktop,
        "cursor" => McpClient.Cursor,
        "vscode" => McpClient.VsCode,
        _ => null,
    };

    public static string Id(McpClient client) => client switch
    {
        McpClient.ClaudeCode => "claude-code",
        McpClient.ClaudeDesktop => "claude-desktop",
        McpClient.Cursor => "cursor",
        _ => "vscode",
    };

    /// <summary>Where the snippet goes, in a sentence (written to standard error).</summary>
    public static string Where(McpClient client, string via) => client switch
    {
        McpClient.ClaudeCode => "Merge into .mcp.json in the project (or ~/.claude.json), or add it with 'claude mcp add-json NAME JSON' using the inner object:",
        McpClient.ClaudeDesktop => via == "http"
            ? "Claude Desktop does not take headers for remote servers from its file; use --via stdio. Merge into claude_desktop_config.json:"
            : "Merge into claude_desktop_config.json (Settings > Developer > Edit Config), then restart Claude Desktop:",
        McpClient.Cursor => "Merge into ~/.cursor/mcp.json (or .cursor/mcp.json in the project):",
        _ => "Merge into .vscode/mcp.json (or the user mcp.json: 'MCP: Open User Configuration'):",
    };

    /// <summary>The stdio bridge: <c>latchkey mcp stdio NAME</c>, which holds no secret.</summary>
    public static string Stdio(McpClient client, string name, string exe)
    {
        var server = new JsonObject();
        if (client == McpClient.VsCode)
        {
            server["type"] = "stdio";
        }

        server["command"] = exe;
        server["args"] = new JsonArray("mcp", "stdio", name);
        return Wrap(client, name, server);
    }

    /// <summary>The gateway's <c>/mcp/NAME</c> with a client key in <c>Authorization: Bearer</c>.</summary>
    public static string Http(McpClient client, string name, string url, string clientKey)
    {
        var server = new JsonObject();
        if (client is McpClient.ClaudeCode or McpClient.VsCode)
        {
            server["type"] = "http";
        }

        server["url"] = url;
        server["headers"] = new JsonObject { ["Authorization"] = $"Bearer {clientKey}" };
        return Wrap(client, name, server);
    }

    private static string Wrap(McpClient client, string name, JsonObject server)
    {
        var root = new JsonObject { [client == McpClient.VsCode ? "servers" : "mcpServers"] = new JsonObject { [name] = server } };
        return root.ToJsonString(Indented);
    }
}
