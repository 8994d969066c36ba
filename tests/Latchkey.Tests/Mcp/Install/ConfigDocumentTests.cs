using System.Text.Json.Nodes;
using Latchkey.Diagnostics;
using Latchkey.Mcp;

namespace Latchkey.Tests.Mcp.Install;

/// <summary>
/// The file edits behind <c>latchkey mcp install</c>: one entry set or removed, every other byte of the file kept
/// (other servers, unknown keys, comments, order, indentation), and a file that does not parse refused with its line.
/// </summary>
public sealed class ConfigDocumentTests
{
    private static readonly JsonObject Entry = new() { ["type"] = "http", ["url"] = "http://127.0.0.1:7777/mcp/tracker" };

    private const string Jsonc =
        """
        // VS Code user MCP servers
        {
          /* the team's servers */
          "servers": {
            "github": {
              "type": "http", // remote
              "url": "https://api.githubcopilot.com/mcp/",
            },
          },
          "inputs": [],
        }
        """;

    [Fact]
    public void WithEntry_JsoncWithCommentsAndTrailingCommas_AddsEntryAndKeepsEveryOtherByte()
    {
        var document = JsonConfigDocument.Parse("mcp.json", Jsonc, "servers", allowComments: true);

        var written = document.WithEntry("tracker", Entry);

        Assert.Equal(
            """
            // VS Code user MCP servers
            {
              /* the team's servers */
              "servers": {
                "github": {
                  "type": "http", // remote
                  "url": "https://api.githubcopilot.com/mcp/",
                },
                "tracker": {
                  "type": "http",
                  "url": "http://127.0.0.1:7777/mcp/tracker"
                },
              },
              "inputs": [],
            }
            """, written);
        Assert.True(JsonNode.DeepEquals(Entry, JsonConfigDocument.Parse("mcp.json", written, "servers", true).Entry("tracker")));
    }

    [Fact]
    public void WithoutEntry_AfterWithEntry_GivesBackTheOriginalText()
    {
        var added = JsonConfigDocument.Parse("mcp.json", Jsonc, "servers", allowComments: true).WithEntry("tracker", Entry);

        var removed = JsonConfigDocument.Parse("mcp.json", added, "servers", allowComments: true).WithoutEntry("tracker");

        Assert.Equal(Jsonc, removed);
    }

    [Theory]
    [InlineData("{\n  \"numStartups\": 3,\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"},\n    \"tracker\": {\"url\": \"old\"},\n    \"z\": {\"command\": \"y\"}\n  },\n  \"projects\": {}\n}\n", "{\n  \"numStartups\": 3,\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"},\n    \"z\": {\"command\": \"y\"}\n  },\n  \"projects\": {}\n}\n")]
    [InlineData("{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"},\n    \"tracker\": {\"url\": \"old\"}\n  }\n}\n", "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"}\n  }\n}\n")]
    [InlineData("{\n  \"mcpServers\": {\n    \"tracker\": {\"url\": \"old\"},\n    \"a\": {\"command\": \"x\"}\n  }\n}\n", "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"}\n  }\n}\n")]
    [InlineData("{\n  \"mcpServers\": {\n    \"tracker\": {\"url\": \"old\"}\n  }\n}\n", "{\n  \"mcpServers\": {\n  }\n}\n")]
    public void WithoutEntry_FirstMiddleLastOrOnlyEntry_RemovesItAndItsCommaOnly(string before, string after)
    {
        Assert.Equal(after, JsonConfigDocument.Parse("f.json", before, "mcpServers", allowComments: false).WithoutEntry("tracker"));
    }

    [Fact]
    public void WithEntry_ExistingEntry_ReplacesOnlyItsValue()
    {
        const string before = "{\r\n\t\"mcpServers\": {\r\n\t\t\"tracker\": {\"url\": \"old\", \"extra\": 1},\r\n\t\t\"b\": {}\r\n\t},\r\n\t\"theme\": \"dark\"\r\n}";

        var written = JsonConfigDocument.Parse("f.json", before, "mcpServers", allowComments: false).WithEntry("tracker", Entry);

        Assert.Equal("{\r\n\t\"mcpServers\": {\r\n\t\t\"tracker\": {\r\n\t\t\t\"type\": \"http\",\r\n\t\t\t\"url\": \"http://127.0.0.1:7777/mcp/tracker\"\r\n\t\t},\r\n\t\t\"b\": {}\r\n\t},\r\n\t\"theme\": \"dark\"\r\n}", written);
    }

    [Theory]
    [InlineData("", "{\n  \"mcpServers\": {\n    \"tracker\": {\n      \"type\": \"http\",\n      \"url\": \"http://127.0.0.1:7777/mcp/tracker\"\n    }\n  }\n}")]
    [InlineData("{}", "{\n  \"mcpServers\": {\n    \"tracker\": {\n      \"type\": \"http\",\n      \"url\": \"http://127.0.0.1:7777/mcp/tracker\"\n    }\n  }\n}")]
    [InlineData("{\n  \"theme\": \"dark\"\n}\n", "{\n  \"theme\": \"dark\",\n  \"mcpServers\": {\n    \"tracker\": {\n      \"type\": \"http\",\n      \"url\": \"http://127.0.0.1:7777/mcp/tracker\"\n    }\n  }\n}\n")]
    [InlineData("{\n  \"mcpServers\": {}\n}\n", "{\n  \"mcpServers\": {\n    \"tracker\": {\n      \"type\": \"http\",\n      \"url\": \"http://127.0.0.1:7777/mcp/tracker\"\n    }\n  }\n}\n")]
    public void WithEntry_NewOrEmptyFileOrNoServersYet_AddsTheServersObject(string before, string after)
    {
        Assert.Equal(after, JsonConfigDocument.Parse("f.json", before, "mcpServers", allowComments: false).WithEntry("tracker", Entry));
    }

    [Theory]
    [InlineData("{\n  \"mcpServers\": {\n    \"a\": {},\n  }\n}", false, 4, 3)]
    [InlineData("{\n  // note\n  \"mcpServers\": {}\n}", false, 2, 3)]
    [InlineData("{\n  \"mcpServers\": {\n    \"a\": {\n  }\n", true, 5, 1)]
    [InlineData("{\n  \"mcpServers\": [1]\n}", true, 2, 17)]
    [InlineData("[]", false, 1, 1)]
    public void Parse_NotJsonTheClientReads_RefusesNamingFileLineAndColumn(string text, bool comments, int line, int column)
    {
        var ex = Assert.Throws<ActionableException>(() => JsonConfigDocument.Parse("/home/u/.claude.json", text, "mcpServers", comments));

        Assert.Contains("/home/u/.claude.json", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"line {line}, column {column}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"line {line}", ex.Fix, StringComparison.Ordinal);
    }

    private const string Toml =
        """
        # Codex settings
        model = "o4-mini"

        [mcp_servers.docs]
        command = "docs-mcp"  # local
        args = ["--stdio"]

        [mcp_servers.tracker]
        url = "http://old"

        [mcp_servers.tracker.env]
        A = "1"

        [profiles.fast]
        model = "gpt-5"
        """;

    [Fact]
    public void Toml_WithEntry_ReplacesTheServersTablesInPlaceAndKeepsCommentsAndOtherTables()
    {
        var entry = new JsonObject { ["url"] = "http://127.0.0.1:7777/mcp/tracker", ["http_headers"] = new JsonObject { ["Authorization"] = "Bearer k" } };

        var written = TomlConfigDocument.Parse("config.toml", Toml).WithEntry("tracker", entry);

        Assert.Equal(
            """
            # Codex settings
            model = "o4-mini"

            [mcp_servers.docs]
            command = "docs-mcp"  # local
            args = ["--stdio"]

            [mcp_servers.tracker]
            url = "http://127.0.0.1:7777/mcp/tracker"
            http_headers = { Authorization = "Bearer k" }

            [profiles.fast]
            model = "gpt-5"

            """.ReplaceLineEndings("\n"), written.ReplaceLineEndings("\n"));
        Assert.True(JsonNode.DeepEquals(entry, TomlConfigDocument.Parse("config.toml", written).Entry("tracker")));
    }

    [Fact]
    public void Toml_WithEntryThenWithout_AddsAtTheEndAndRemovesAgain()
    {
        const string before = "# mine\nmodel = \"o4-mini\"\n";
        var entry = new JsonObject { ["command"] = "/usr/bin/latchkey", ["args"] = new JsonArray("mcp", "stdio", "my.server") };

        var added = TomlConfigDocument.Parse("config.toml", before).WithEntry("my.server", entry);
        var removed = TomlConfigDocument.Parse("config.toml", added).WithoutEntry("my.server");

        Assert.Contains("[mcp_servers.\"my.server\"]", added, StringComparison.Ordinal);
        Assert.True(JsonNode.DeepEquals(entry, TomlConfigDocument.Parse("config.toml", added).Entry("my.server")));
        Assert.Equal(before, removed.TrimEnd('\n') + "\n");
    }

    [Fact]
    public void Toml_Unparseable_RefusesNamingFileAndLine()
    {
        var ex = Assert.Throws<ActionableException>(() => TomlConfigDocument.Parse("/home/u/.codex/config.toml", "model = \"x\"\n[mcp_servers.a\nurl = 1\n"));

        Assert.Contains("/home/u/.codex/config.toml", ex.Message, StringComparison.Ordinal);
        Assert.Contains("line 2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Toml_ServerAsInlineTable_RefusedRatherThanGuessed()
    {
        var document = TomlConfigDocument.Parse("config.toml", "[mcp_servers]\ntracker = { url = \"x\" }\n");

        var ex = Assert.Throws<ActionableException>(() => document.WithEntry("tracker", Entry));

        Assert.Contains("by hand", ex.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Diff_KeyInEitherText_IsMasked()
    {
        var key = "lk_" + new string('a', 12) + "_" + new string('b', 43);

        var diff = LineDiff.Unified("f", "{\n  \"a\": 1\n}\n", $"{{\n  \"a\": 1,\n  \"k\": \"Bearer {key}\"\n}}\n");

        Assert.DoesNotContain(key, diff, StringComparison.Ordinal);
        Assert.Contains("+  \"k\": \"Bearer lk_…\"", diff, StringComparison.Ordinal);
        Assert.Contains("-  \"a\": 1", diff, StringComparison.Ordinal);
    }

    [Fact]
    public void Diff_OtherServersTokenInTheContext_IsMasked()
    {
        var diff = LineDiff.Unified("f", "{\n  \"gh\": { \"Authorization\": \"Bearer ghp_SECRET123\" },\n  \"a\": 1\n}\n", "{\n  \"gh\": { \"Authorization\": \"Bearer ghp_SECRET123\" },\n  \"a\": 2\n}\n");

        Assert.DoesNotContain("SECRET", diff, StringComparison.Ordinal);
        Assert.Contains("\"Bearer …\"", diff, StringComparison.Ordinal);
    }
}
