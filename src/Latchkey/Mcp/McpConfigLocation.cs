using System.Runtime.InteropServices;

namespace Latchkey.Mcp;

/// <summary>The file formats <c>latchkey mcp install</c> edits.</summary>
internal enum McpConfigFormat
{
    /// <summary>Plain JSON, as the client reads it with a strict parser: no comments, no trailing commas.</summary>
    Json,

    /// <summary>JSON with comments and trailing commas (VS Code's and Cursor's JSONC); comments are kept.</summary>
    JsonWithComments,

    /// <summary>TOML (Codex's <c>config.toml</c>), edited through its syntax tree.</summary>
    Toml,
}

/// <summary>Where the configuration goes: the user's own file, or one in the current project.</summary>
internal enum McpConfigScope
{
    User,
    Project,
}

/// <summary>What the file paths depend on: the home folder, the current folder, the environment and the OS.</summary>
/// <param name="Home">The user's home folder.</param>
/// <param name="CurrentDirectory">The project folder for <c>--scope project</c>.</param>
/// <param name="Variable">Reads an environment variable (<c>CODEX_HOME</c>, <c>CLAUDE_CONFIG_DIR</c>, <c>APPDATA</c>, <c>XDG_CONFIG_HOME</c>).</param>
/// <param name="Platform">The operating system the client runs on.</param>
internal sealed record McpConfigEnvironment(string Home, string CurrentDirectory, Func<string, string?> Variable, OSPlatform Platform)
{
    /// <summary>This process's home, folder, environment and OS.</summary>
    public static McpConfigEnvironment Current() => new(
        Environment.GetFolderPath(Environment.SpecialFolder.UserProfile),
        Directory.GetCurrentDirectory(),
        Environment.GetEnvironmentVariable,
        OperatingSystem.IsWindows() ? OSPlatform.Windows : OperatingSystem.IsMacOS() ? OSPlatform.OSX : OSPlatform.Linux);
}

/// <summary>One client's configuration file: its path, its format, and the object its servers live under.</summary>
/// <param name="Path">The file's full path.</param>
/// <param name="Format">How it is parsed and written.</param>
/// <param name="ServersKey">The top-level key of the servers (<c>mcpServers</c>, <c>servers</c>, <c>mcp_servers</c>).</param>
/// <param name="SharedWithProject">Whether the file sits in the project (and so may be committed): the key in it must not be.</param>
internal sealed record McpConfigLocation(string Path, McpConfigFormat Format, string ServersKey, bool SharedWithProject)
{
    /// <summary>
    /// The file <paramref name="client"/> reads for <paramref name="scope"/>, or null with a sentence in
    /// <paramref name="problem"/> when the client has no such scope.
    /// </summary>
    /// <remarks>
    /// Which files allow comments: VS Code's <c>mcp.json</c> and Cursor's <c>mcp.json</c> are JSONC (comments and
    /// trailing commas; both editors read them with the same JSONC parser as their settings). Claude Code's
    /// <c>~/.claude.json</c> and <c>.mcp.json</c> and Claude Desktop's <c>claude_desktop_config.json</c> are read with
    /// a strict JSON parser, so a comment in them is an error the client would hit too, and is reported as one.
    /// </remarks>
    public static McpConfigLocation? For(McpClient client, McpConfigScope scope, McpConfigEnvironment env, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(env);
        problem = null;
        var key = McpClientConfig.ServersKey(client);
        switch (client, scope)
        {
            case (McpClient.ClaudeCode, McpConfigScope.User):
                // Claude Code keeps its user settings in CLAUDE_CONFIG_DIR when that is set, else in the home folder.
                return new(System.IO.Path.Combine(env.Variable("CLAUDE_CONFIG_DIR") is { Length: > 0 } dir ? dir : env.Home, ".claude.json"), McpConfigFormat.Json, key, false);
            case (McpClient.ClaudeCode, McpConfigScope.Project):
                return new(System.IO.Path.Combine(env.CurrentDirectory, ".mcp.json"), McpConfigFormat.Json, key, true);
            case (McpClient.ClaudeDesktop, McpConfigScope.User):
                return new(System.IO.Path.Combine(AppData(env, env.Platform == OSPlatform.Linux ? (env.Variable("XDG_CONFIG_HOME") is { Length: > 0 } x ? x : System.IO.Path.Combine(env.Home, ".config")) : null), "Claude", "claude_desktop_config.json"), McpConfigFormat.Json, key, false);
            case (McpClient.Cursor, McpConfigScope.User):
                return new(System.IO.Path.Combine(env.Home, ".cursor", "mcp.json"), McpConfigFormat.JsonWithComments, key, false);
            case (McpClient.Cursor, McpConfigScope.Project):
                return new(System.IO.Path.Combine(env.CurrentDirectory, ".cursor", "mcp.json"), McpConfigFormat.JsonWithComments, key, true);
            case (McpClient.VsCode, McpConfigScope.User):
                return new(System.IO.Path.Combine(AppData(env, env.Platform == OSPlatform.Linux ? (env.Variable("XDG_CONFIG_HOME") is { Length: > 0 } y ? y : System.IO.Path.Combine(env.Home, ".config")) : null), "Code", "User", "mcp.json"), McpConfigFormat.JsonWithComments, key, false);
            case (McpClient.VsCode, McpConfigScope.Project):
                return new(System.IO.Path.Combine(env.CurrentDirectory, ".vscode", "mcp.json"), McpConfigFormat.JsonWithComments, key, true);
            case (McpClient.Codex, McpConfigScope.User):
                return new(System.IO.Path.Combine(env.Variable("CODEX_HOME") is { Length: > 0 } codex ? codex : System.IO.Path.Combine(env.Home, ".codex"), "config.toml"), McpConfigFormat.Toml, key, false);
            default:
                problem = $"{McpClientConfig.Id(client)} has no project configuration file Latchkey writes.";
                return null;
        }
    }

    /// <summary>The per-user application settings folder: %APPDATA% on Windows, ~/Library/Application Support on macOS, <paramref name="linux"/> on Linux.</summary>
    private static string AppData(McpConfigEnvironment env, string? linux) =>
        env.Platform == OSPlatform.Windows ? env.Variable("APPDATA") is { Length: > 0 } a ? a : System.IO.Path.Combine(env.Home, "AppData", "Roaming")
        : env.Platform == OSPlatform.OSX ? System.IO.Path.Combine(env.Home, "Library", "Application Support")
        : linux!;
}
