using System.Text.Json;
using System.Text.Json.Nodes;
using Latchkey.Store;

namespace Latchkey.Tests.Cli;

/// <summary>
/// <c>latchkey mcp install</c>, run as the real executable with a private home folder: the entry lands in each
/// client's own file, read back here; a merge keeps everything else; a second run changes nothing; <c>--remove</c>
/// takes it out and revokes its key; <c>--dry-run</c> writes nothing; a file that does not parse is never touched.
/// </summary>
public sealed class McpInstallCommandTests : IDisposable
{
    private const string Gateway = "http://127.0.0.1:7999";
    private readonly TempHome _home = new();
    private readonly string _user;
    private readonly string _project;

    public McpInstallCommandTests()
    {
        _user = Directory.CreateDirectory(Path.Combine(_home.Root, "user")).FullName;
        _project = Directory.CreateDirectory(Path.Combine(_home.Root, "project")).FullName;
        using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
        store.CreateAsync(new NewCredential("tracker", CredentialKind.OAuth, new CredentialMetadata
        {
            Upstream = "https://mcp.example.com/mcp",
            McpTransport = "streamable-http",
            Issuer = "https://auth.example.com",
            Resource = "https://mcp.example.com/mcp",
            ObtainedAt = DateTimeOffset.UtcNow,
            ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        }, new CredentialSecrets { AccessToken = "at-not-used" }), default).GetAwaiter().GetResult();
    }

    public void Dispose() => _home.Dispose();

    public static TheoryData<string, string, string, string> Clients => new()
    {
        { "claude-code", ".claude.json", "mcpServers", "http" },
        { "claude-desktop", ".config/Claude/claude_desktop_config.json", "mcpServers", "stdio" },
        { "cursor", ".cursor/mcp.json", "mcpServers", "http" },
        { "vscode", ".config/Code/User/mcp.json", "servers", "http" },
        { "codex", "codex-home/config.toml", "mcp_servers", "http" },
    };

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task Install_EveryClient_WritesTheEntryInTheClientsOwnFileWithAKeyMadeForIt(string client, string file, string serversKey, string via)
    {
        var result = await InstallAsync("tracker", "--client", client);

        Assert.True(result.ExitCode == 0, result.ToString());
        var path = Path.Combine(_user, file);
        var entry = ReadEntry(path, serversKey, "tracker");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        if (via == "stdio")
        {
            Assert.Equal(Processes.LatchkeyExe, entry["command"]!.GetValue<string>());
            Assert.Equal(["mcp", "stdio", "tracker"], entry["args"]!.AsArray().Select(a => a!.GetValue<string>()));
            Assert.Empty(await KeysAsync());
            return;
        }

        Assert.Equal($"{Gateway}/mcp/tracker", entry["url"]!.GetValue<string>());
        var key = await VerifyAsync(entry);
        Assert.Equal(ClientKeyStatus.Valid, key.Status);
        Assert.Equal(client, key.Key!.MadeFor);
        Assert.Equal(["tracker"], key.Key.Credentials);
        Assert.DoesNotContain("lk_", result.All, StringComparison.Ordinal); // the key is in the file, never on the terminal
    }

    [Theory]
    [InlineData("claude-code", ".mcp.json", "mcpServers")]
    [InlineData("cursor", ".cursor/mcp.json", "mcpServers")]
    [InlineData("vscode", ".vscode/mcp.json", "servers")]
    public async Task Install_ScopeProject_WritesIntoTheCurrentFolderAndWarnsAboutVersionControl(string client, string file, string serversKey)
    {
        var result = await InstallAsync("tracker", "--client", client, "--scope", "project");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(ClientKeyStatus.Valid, (await VerifyAsync(ReadEntry(Path.Combine(_project, file), serversKey, "tracker"))).Status);
        Assert.Contains(".gitignore", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_ExistingGroupReadableJsoncFile_KeepsOtherEntriesUnknownKeysAndCommentsNarrowsItToTheOwnerAndBacksItUp()
    {
        var path = Path.Combine(_user, ".cursor", "mcp.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        const string before = "{\n  // my servers\n  \"mcpServers\": {\n    \"github\": { \"url\": \"https://api.githubcopilot.com/mcp/\" }, /* keep */\n  },\n  \"futureSetting\": { \"x\": [1, 2] },\n}\n";
        await File.WriteAllTextAsync(path, before);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        var result = await InstallAsync("tracker", "--client", "cursor");

        Assert.True(result.ExitCode == 0, result.ToString());
        var after = await File.ReadAllTextAsync(path);
        Assert.StartsWith("{\n  // my servers\n  \"mcpServers\": {\n    \"github\": { \"url\": \"https://api.githubcopilot.com/mcp/\" },\n    \"tracker\": {", after, StringComparison.Ordinal);
        Assert.EndsWith("}, /* keep */\n  },\n  \"futureSetting\": { \"x\": [1, 2] },\n}\n", after, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path)); // it holds a client key now: the group's read is taken away
        Assert.Equal(before, await File.ReadAllTextAsync(path + ".latchkey-backup"));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.latchkey-tmp"));
    }

    [Fact]
    public async Task Install_Codex_KeepsTheRestOfConfigTomlAndHonoursCodexHome()
    {
        var path = Path.Combine(_user, "codex-home", "config.toml");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        const string before = "# my Codex\nmodel = \"gpt-5\"\n\n[mcp_servers.docs]\ncommand = \"docs\" # local\n";
        await File.WriteAllTextAsync(path, before);

        var result = await InstallAsync("tracker", "--client", "codex");

        Assert.True(result.ExitCode == 0, result.ToString());
        var after = await File.ReadAllTextAsync(path);
        Assert.StartsWith(before, after, StringComparison.Ordinal);
        Assert.Contains("[mcp_servers.tracker]\nurl = \"http://127.0.0.1:7999/mcp/tracker\"\nhttp_headers = { Authorization = \"Bearer lk_", after, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(path + ".latchkey-backup"));
    }

    [Theory]
    [InlineData("claude-code")]
    [InlineData("codex")]
    [InlineData("claude-desktop")]
    public async Task Install_Twice_SecondChangesNothingAndMakesNoKey(string client)
    {
        Assert.Equal(0, (await InstallAsync("tracker", "--client", client)).ExitCode);
        var files = Snapshot();
        var keys = await KeysAsync();

        var again = await InstallAsync("tracker", "--client", client);

        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("nothing changed", again.Stdout, StringComparison.Ordinal);
        Assert.Equal(files, Snapshot());
        Assert.Equal(keys.Count, (await KeysAsync()).Count);
    }

    [Fact]
    public async Task Install_EntryTheUserTuned_KeepsTheirOwnSettingsInItAndRevokesTheKeyItReplaced()
    {
        var path = Path.Combine(_user, "codex-home", "config.toml");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, "[mcp_servers.tracker]\ncommand = \"old\"\nstartup_timeout_sec = 20\ndefault_tools_approval_mode = \"approve\"\ntools.whoami.approval_mode = \"prompt\"\n");
        Assert.Equal(0, (await InstallAsync("tracker", "--client", "codex")).ExitCode);
        var first = ReadEntry(path, "mcp_servers", "tracker");

        var stdio = await InstallAsync("tracker", "--client", "codex", "--via", "stdio");

        Assert.True(stdio.ExitCode == 0, stdio.ToString());
        var entry = ReadEntry(path, "mcp_servers", "tracker");
        Assert.Equal(20, entry["startup_timeout_sec"]!.GetValue<long>());
        Assert.Equal("approve", entry["default_tools_approval_mode"]!.GetValue<string>());
        Assert.Equal("prompt", entry["tools"]!["whoami"]!["approval_mode"]!.GetValue<string>());
        Assert.Equal(Processes.LatchkeyExe, entry["command"]!.GetValue<string>());
        Assert.Null(entry["url"]);
        Assert.Equal(ClientKeyStatus.Revoked, (await VerifyAsync(first)).Status);
        Assert.Contains("Revoked client key", stdio.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_Remove_TakesTheEntryOutAndRevokesItsKeyAndLeavesTheRest()
    {
        var path = Path.Combine(_user, ".claude.json");
        await File.WriteAllTextAsync(path, "{\n  \"numStartups\": 4,\n  \"mcpServers\": {\n    \"other\": {\n      \"command\": \"x\"\n    }\n  }\n}\n");
        Assert.Equal(0, (await InstallAsync("tracker", "--client", "claude-code")).ExitCode);
        var entry = ReadEntry(path, "mcpServers", "tracker");

        var removed = await InstallAsync("tracker", "--client", "claude-code", "--remove");

        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.Equal("{\n  \"numStartups\": 4,\n  \"mcpServers\": {\n    \"other\": {\n      \"command\": \"x\"\n    }\n  }\n}\n", await File.ReadAllTextAsync(path));
        Assert.Equal(ClientKeyStatus.Revoked, (await VerifyAsync(entry)).Status);
        Assert.Contains("Revoked client key", removed.Stdout, StringComparison.Ordinal);
        var again = await InstallAsync("tracker", "--client", "claude-code", "--remove");
        Assert.Contains("nothing changed", again.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_DryRun_PrintsTheDiffAndWritesNothingAndMakesNoKey()
    {
        var path = Path.Combine(_user, ".claude.json");
        const string before = "{\n  \"theme\": \"dark\"\n}\n";
        await File.WriteAllTextAsync(path, before);

        var result = await InstallAsync("tracker", "--client", "claude-code", "--dry-run");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains($"+++ {path}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("-  \"theme\": \"dark\"", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("+  \"theme\": \"dark\",", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("+      \"url\": \"http://127.0.0.1:7999/mcp/tracker\",", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(path));
        Assert.False(File.Exists(path + ".latchkey-backup"));
        Assert.Empty(await KeysAsync());
    }

    [Theory]
    [InlineData("claude-code", ".claude.json", "{\n  \"mcpServers\": {\n    \"a\": {},\n  }\n}\n", "line 4")]
    [InlineData("codex", "codex-home/config.toml", "model = \"x\"\n[mcp_servers.a\n", "line 2")]
    public async Task Install_FileThatDoesNotParse_LeftUntouchedAndTheErrorNamesFileAndLine(string client, string file, string text, string line)
    {
        var path = Path.Combine(_user, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, text);

        var result = await InstallAsync("tracker", "--client", client);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(path, result.Stderr, StringComparison.Ordinal);
        Assert.Contains(line, result.Stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(text, await File.ReadAllTextAsync(path));
        Assert.False(File.Exists(path + ".latchkey-backup"));
        Assert.Empty(await KeysAsync());
    }

    [Fact]
    public async Task KeysList_AfterInstall_ShowsWhichClientEachKeyWasMadeFor()
    {
        Assert.Equal(0, (await InstallAsync("tracker", "--client", "cursor")).ExitCode);
        Assert.Equal(0, (await InstallAsync("tracker", "--client", "codex")).ExitCode);
        Assert.Equal(0, (await Processes.Latchkey(_home.Path, null, "keys", "create", "by-hand", "--credential", "tracker")).ExitCode);

        var json = await Processes.Latchkey(_home.Path, null, "keys", "list", "--json");
        var table = await Processes.Latchkey(_home.Path, null, "keys", "list");

        using var list = JsonDocument.Parse(json.Stdout);
        var madeFor = list.RootElement.EnumerateArray().ToDictionary(k => k.GetProperty("name").GetString()!, k => k.GetProperty("made_for").GetString());
        Assert.Null(madeFor["by-hand"]);
        Assert.Equal(["codex", "cursor"], madeFor.Values.Where(v => v is not null).Order(StringComparer.Ordinal));
        Assert.Contains("FOR", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("codex", table.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_UnknownServerOrClient_RefusedWithWhatToType()
    {
        var server = await InstallAsync("nope", "--client", "claude-code");
        var client = await InstallAsync("tracker", "--client", "emacs");
        var scope = await InstallAsync("tracker", "--client", "codex", "--scope", "project");

        Assert.Equal(4, server.ExitCode);
        Assert.Contains("latchkey mcp add", server.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, client.ExitCode);
        Assert.Contains("codex", client.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, scope.ExitCode);
        Assert.Empty(Snapshot());
    }

    private Task<Processes.Result> InstallAsync(params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, _home.Path, ["mcp", "install", .. args, "--gateway", Gateway]);
        info.WorkingDirectory = _project;
        info.Environment["HOME"] = _user;
        info.Environment["CODEX_HOME"] = Path.Combine(_user, "codex-home");
        foreach (var variable in new[] { "XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "APPDATA" })
        {
            info.Environment.Remove(variable);
        }

        return Processes.Run(info, null);
    }

    private static JsonObject ReadEntry(string path, string serversKey, string name)
    {
        var text = File.ReadAllText(path);
        if (path.EndsWith(".toml", StringComparison.Ordinal))
        {
            return Latchkey.Mcp.TomlConfigDocument.Parse(path, text).Entry(name)!;
        }

        var root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })!;
        return root[serversKey]![name]!.AsObject();
    }

    private async Task<ClientKeyCheck> VerifyAsync(JsonObject entry)
    {
        var key = Latchkey.Mcp.McpClientConfig.KeyIn(entry)!;
        await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
        return await store.VerifyKeyAsync(key, default);
    }

    private async Task<IReadOnlyList<ClientKey>> KeysAsync()
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
        return await store.ListKeysAsync(default);
    }

    private Dictionary<string, string> Snapshot() =>
        Directory.GetFiles(_user, "*", SearchOption.AllDirectories).Concat(Directory.GetFiles(_project, "*", SearchOption.AllDirectories))
            .ToDictionary(f => f, File.ReadAllText);
}
