using System.Text.Json;
using System.Text.Json.Nodes;

namespace Latchkey.Mcp;

/// <summary>The MCP clients <c>latchkey mcp config</c> prints a snippet for and <c>latchkey mcp install</c> writes into.</summary>
internal enum McpClient
{
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    VsCode,
    Codex,
}

/// <summary>
/// The one source of truth for what each MCP client's entry for a server looks like, used both by the snippet
/// <c>latchkey mcp config</c> prints and by the entry <c>latchkey mcp install</c> writes (docs/mcp.md lists the
/// sources): Claude Code's <c>.mcp.json</c>/<c>~/.claude.json</c> and Cursor's <c>mcp.json</c> use a top-level
/// <c>mcpServers</c> object (<c>type: "http"</c> + <c>url</c> + <c>headers</c> for Claude Code, <c>url</c> +
/// <c>headers</c> for Cursor); VS Code's <c>mcp.json</c> uses <c>servers</c> with <c>type: "http"</c> or
/// <c>type: "stdio"</c>; Claude Desktop's <c>claude_desktop_config.json</c> takes only stdio servers (<c>command</c> +
/// <c>args</c>) from its file; Codex's <c>config.toml</c> has a <c>[mcp_servers.NAME]</c> table with <c>command</c> +
/// <c>args</c>, or <c>url</c> + <c>http_headers</c> for a streamable HTTP server.
/// </summary>
internal static class McpClientConfig
{
    /// <summary>The <c>--client</c> values, for help and errors.</summary>
    public const string Names = "claude-code, claude-desktop, cursor, vscode or codex";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The keys of an entry Latchkey writes (any client); every other key of an entry is the user's and is kept.</summary>
    public static IReadOnlySet<string> ManagedKeys { get; } = new HashSet<string>(StringComparer.Ordinal) { "type", "command", "args", "env", "url", "headers", "http_headers" };

    public static McpClient? Parse(string text) => text switch
    {
        "claude-code" => McpClient.ClaudeCode,
        "claude-desktop" => McpClient.ClaudeDesktop,
        "cursor" => McpClient.Cursor,
        "vscode" => McpClient.VsCode,
        "codex" => McpClient.Codex,
        _ => null,
    };

    public static string Id(McpClient client) => client switch
    {
        McpClient.ClaudeCode => "claude-code",
        McpClient.ClaudeDesktop => "claude-desktop",
        McpClient.Cursor => "cursor",
        McpClient.Codex => "codex",
        _ => "vscode",
    };

    /// <summary>
    /// The transport used when <c>--via</c> is not given: the stdio bridge for Claude Desktop (its file takes no remote
    /// server with headers), the gateway's <c>/mcp/NAME</c> over HTTP for every other client.
    /// </summary>
    public static string DefaultVia(McpClient client) => client == McpClient.ClaudeDesktop ? "stdio" : "http";

    /// <summary>The object under which the client keeps its servers: <c>servers</c>, <c>mcpServers</c> or <c>mcp_servers</c>.</summary>
    public static string ServersKey(McpClient client) => client switch
    {
        McpClient.VsCode => "servers",
        McpClient.Codex => "mcp_servers",
        _ => "mcpServers",
    };

    /// <summary>Where the snippet goes, in a sentence (written to standard error).</summary>
    public static string Where(McpClient client, string via) => client switch
    {
        McpClient.ClaudeCode => "Merge into .mcp.json in the project (or ~/.claude.json), or add it with 'claude mcp add-json NAME JSON' using the inner object; 'latchkey mcp install NAME --client claude-code' does it for you:",
        McpClient.ClaudeDesktop => via == "http"
            ? "Claude Desktop does not take headers for remote servers from its file; use --via stdio. Merge into claude_desktop_config.json:"
            : "Merge into claude_desktop_config.json (Settings > Developer > Edit Config), then restart Claude Desktop; 'latchkey mcp install NAME --client claude-desktop' does it for you:",
        McpClient.Cursor => "Merge into ~/.cursor/mcp.json (or .cursor/mcp.json in the project); 'latchkey mcp install NAME --client cursor' does it for you:",
        McpClient.Codex => "Add to ~/.codex/config.toml (or $CODEX_HOME/config.toml); 'latchkey mcp install NAME --client codex' does it for you:",
        _ => "Merge into .vscode/mcp.json (or the user mcp.json: 'MCP: Open User Configuration'); 'latchkey mcp install NAME --client vscode' does it for you:",
    };

    /// <summary>
    /// The entry for the stdio bridge, <c>latchkey mcp stdio NAME</c>, which holds no secret. <paramref name="env"/>
    /// is what the bridge needs to find this store when the client starts it with its own environment (a Latchkey
    /// home other than the default, a PostgreSQL store and its key file); every client listed takes an <c>env</c>
    /// object (Codex: an <c>env</c> table) for a stdio server.
    /// </summary>
    public static JsonObject StdioEntry(McpClient client, string name, string exe, IReadOnlyDictionary<string, string>? env = null)
    {
        var server = new JsonObject();
        if (client == McpClient.VsCode)
        {
            server["type"] = "stdio";
        }

        server["command"] = exe;
        server["args"] = new JsonArray("mcp", "stdio", name);
        if (env is { Count: > 0 })
        {
            server["env"] = new JsonObject(env.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value)));
        }

        return server;
    }

    /// <summary>The entry for the gateway's <c>/mcp/NAME</c>, with a client key in <c>Authorization: Bearer</c>.</summary>
    public static JsonObject HttpEntry(McpClient client, string url, string clientKey)
    {
        var server = new JsonObject();
        if (client is McpClient.ClaudeCode or McpClient.VsCode)
        {
            server["type"] = "http";
        }

        server["url"] = url;
        server[client == McpClient.Codex ? "http_headers" : "headers"] = new JsonObject { ["Authorization"] = $"Bearer {clientKey}" };
        return server;
    }

    /// <summary>
    /// The client key an HTTP entry carries (<c>Authorization: Bearer KEY</c> in its headers), or null. Used to tell
    /// whether an entry already written still works and, on <c>--remove</c>, which key to revoke.
    /// </summary>
    public static string? KeyIn(JsonObject? entry)
    {
        var headers = entry?["headers"] as JsonObject ?? entry?["http_headers"] as JsonObject;
        return headers?["Authorization"] is JsonValue v && v.TryGetValue<string>(out var auth) && auth.StartsWith("Bearer ", StringComparison.Ordinal)
            ? auth["Bearer ".Length..].Trim()
            : null;
    }

    /// <summary>The snippet <c>mcp config</c> prints for the stdio bridge.</summary>
    public static string Stdio(McpClient client, string name, string exe, IReadOnlyDictionary<string, string>? env = null) => Wrap(client, name, StdioEntry(client, name, exe, env));

    /// <summary>The snippet <c>mcp config</c> prints for the gateway's <c>/mcp/NAME</c>.</summary>
    public static string Http(McpClient client, string name, string url, string clientKey) => Wrap(client, name, HttpEntry(client, url, clientKey));

    private static string Wrap(McpClient client, string name, JsonObject server)
    {
        if (client == McpClient.Codex)
        {
            return TomlConfigDocument.Snippet(name, server);
        }

        var root = new JsonObject { [ServersKey(client)] = new JsonObject { [name] = server } };
        return root.ToJsonString(Indented);
    }
}
