using System.Text.Json.Nodes;
using Latchkey.Diagnostics;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace Latchkey.Mcp;

/// <summary>
/// Codex's <c>config.toml</c> edited through Tomlyn's syntax tree, which keeps every comment, blank line and
/// layout of what it does not touch: the server's <c>[mcp_servers.NAME]</c> table (and any
/// <c>[mcp_servers.NAME.*]</c> sub-table) is replaced in place, added at the end, or removed. Values are built as
/// syntax nodes, never by joining strings, so a name or URL is always quoted as TOML requires.
/// </summary>
internal sealed class TomlConfigDocument : IMcpConfigDocument
{
    private const string ServersKey = "mcp_servers";

    private readonly string _path;
    private readonly string _text;

    private TomlConfigDocument(string path, string text)
    {
        _path = path;
        _text = text;
        var document = Read(path, text);
        _ = document;
    }

    /// <summary>Parses <paramref name="text"/> (the file at <paramref name="path"/>, for errors; empty for a new file).</summary>
    /// <exception cref="ActionableException">The text is not TOML, or it defines the server in a form this editor does not change.</exception>
    public static TomlConfigDocument Parse(string path, string text) => new(path, text);

    /// <summary>The <c>[mcp_servers.NAME]</c> table <c>mcp config --client codex</c> prints for <paramref name="entry"/>.</summary>
    public static string Snippet(string name, JsonObject entry)
    {
        var document = new DocumentSyntax();
        document.Tables.Add(Table(name, entry));
        return document.ToString().TrimEnd('\n', '\r');
    }

    public JsonObject? Entry(string name)
    {
        var document = Read(_path, _text);
        var tables = TablesOf(document, name);
        if (tables.Count == 0)
        {
            return null;
        }

        var entry = new JsonObject();
        foreach (var table in tables)
        {
            var parts = Parts(table.Name!);
            var target = entry;
            foreach (var part in parts.Skip(2))
            {
                target = (JsonObject)(target[part] ??= new JsonObject());
            }

            foreach (var item in table.Items)
            {
                Set(target, Parts(item.Key!), ToJson(item.Value));
            }
        }

        return entry;
    }

    public string WithEntry(string name, JsonObject entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var document = Read(_path, _text);
        var tables = TablesOf(document, name);
        var replacement = Table(name, entry);
        if (tables.Count == 0)
        {
            if (document.Tables.ChildrenCount > 0 || document.KeyValues.ChildrenCount > 0)
            {
                replacement.AddLeadingTriviaNewLine(); // a blank line before the new table, as Codex writes them
            }

            document.Tables.Add(replacement);
            return Ensure(document.ToString());
        }

        // Keep the first table's place and leading comments: move them onto the replacement.
        var first = tables[0];
        var index = IndexOf(document, first);
        foreach (var table in tables)
        {
            document.Tables.RemoveChild(table);
        }

        replacement.OpenBracket!.LeadingTrivia = first.OpenBracket?.LeadingTrivia;
        if (tables[^1].ToString()!.ReplaceLineEndings("\n").EndsWith("\n\n", StringComparison.Ordinal) && replacement.Items.ChildrenCount > 0)
        {
            replacement.Items.GetChild(replacement.Items.ChildrenCount - 1)!.AddTrailingTriviaNewLine(); // the blank line that ended the old table
        }

        Insert(document, index, replacement);
        return Ensure(document.ToString());
    }

    public string WithoutEntry(string name)
    {
        var document = Read(_path, _text);
        var tables = TablesOf(document, name);
        if (tables.Count == 0)
        {
            return _text;
        }

        foreach (var table in tables)
        {
            document.Tables.RemoveChild(table);
        }

        // The blank line that separated the removed tables from what came before is not left at the end of the file.
        var text = Ensure(document.ToString());
        var endsBlank = _text.ReplaceLineEndings("\n").EndsWith("\n\n", StringComparison.Ordinal);
        while (!endsBlank && text.ReplaceLineEndings("\n").EndsWith("\n\n", StringComparison.Ordinal))
        {
            text = text[..^(text.EndsWith("\r\n\r\n", StringComparison.Ordinal) ? 2 : 1)];
        }

        return text;
    }

    private static DocumentSyntax Read(string path, string text)
    {
        var document = SyntaxParser.Parse(text, path, true);
        if (document.HasErrors)
        {
            var error = document.Diagnostics.First(d => d.Kind == DiagnosticMessageKind.Error);
            var line = error.Span.Start.Line + 1;
            var column = error.Span.Start.Column + 1;
            throw new ActionableException(
                $"{path} does not parse as TOML at line {line}, column {column}: {error.Message} Nothing was changed; Latchkey never writes over a file it cannot read.",
                $"Fix line {line} of {path} (Codex cannot read it either), or move the file aside, then run the command again.");
        }

        return document;
    }

    /// <summary>
    /// The tables that make up the server <paramref name="name"/>: <c>[mcp_servers.NAME]</c> and its sub-tables. A
    /// server defined another way (an inline table, dotted keys under <c>[mcp_servers]</c>) is refused.
    /// </summary>
    private List<TableSyntaxBase> TablesOf(DocumentSyntax document, string name)
    {
        foreach (var item in document.KeyValues)
        {
            if (Parts(item.Key!) is [ServersKey, ..])
            {
                throw OtherForm(name);
            }
        }

        var found = new List<TableSyntaxBase>();
        foreach (var table in document.Tables)
        {
            var parts = Parts(table.Name!);
            if (parts is [ServersKey] && table.Items.Any(i => Parts(i.Key!) is [var first, ..] && first == name))
            {
                throw OtherForm(name);
            }

            if (parts.Count >= 2 && parts[0] == ServersKey && parts[1] == name)
            {
                if (table is TableArraySyntax)
                {
                    throw OtherForm(name);
                }

                found.Add(table);
            }
        }

        return found;
    }

    private ActionableException OtherForm(string name) => new(
        $"{_path} defines the MCP server '{name}' in a form 'latchkey mcp install' does not edit (not as a [{ServersKey}.{name}] table). Nothing was changed.",
        $"Remove '{name}' from {_path} by hand, then run the command again.");

    private static int IndexOf(DocumentSyntax document, TableSyntaxBase table)
    {
        for (var i = 0; i < document.Tables.ChildrenCount; i++)
        {
            if (ReferenceEquals(document.Tables.GetChild(i), table))
            {
                return i;
            }
        }

        return document.Tables.ChildrenCount;
    }

    private static void Insert(DocumentSyntax document, int index, TableSyntaxBase table)
    {
        var after = new List<TableSyntaxBase>();
        while (document.Tables.ChildrenCount > index)
        {
            var last = document.Tables.GetChild(index)!;
            document.Tables.RemoveChildAt(index);
            after.Add(last);
        }

        document.Tables.Add(table);
        foreach (var t in after)
        {
            document.Tables.Add(t);
        }
    }

    /// <summary>The table <c>[mcp_servers.NAME]</c> holding <paramref name="entry"/>: strings, string arrays, and inline tables of strings.</summary>
    private static TableSyntax Table(string name, JsonObject entry)
    {
        var key = new KeySyntax(ServersKey);
        key.DotKeys.Add(new DottedKeyItemSyntax { Dot = SyntaxFactory.Token(TokenKind.Dot), Key = KeyPart(name) });
        var table = new TableSyntax(key);
        foreach (var (field, value) in entry)
        {
            table.Items.Add(new KeyValueSyntax(new KeySyntax { Key = KeyPart(field) }, ToToml(value)));
        }

        return table;
    }

    private static BareKeyOrStringValueSyntax KeyPart(string part) =>
        BareKeySyntax.IsBareKey(part) ? new BareKeySyntax(part) : new StringValueSyntax(part);

    /// <summary>
    /// A value as TOML: strings, booleans, integers, floats, arrays of strings or of integers, and tables (inline).
    /// Anything else (an array of tables or of mixed values) keeps its JSON text as a string.
    /// </summary>
    private static ValueSyntax ToToml(JsonNode? value) => value switch
    {
        JsonArray array when array.All(a => a is JsonValue s && s.GetValueKind() == System.Text.Json.JsonValueKind.String) => new ArraySyntax(array.Select(a => a!.GetValue<string>()).ToArray()),
        JsonArray array when array.All(a => a is JsonValue n && n.TryGetValue<int>(out _)) => new ArraySyntax(array.Select(a => a!.GetValue<int>()).ToArray()),
        JsonObject table => InlineTable(table),
        JsonValue v when v.GetValueKind() is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False => new BooleanValueSyntax(v.GetValue<bool>()),
        JsonValue v when v.TryGetValue<long>(out var i) => new IntegerValueSyntax(i),
        JsonValue v when v.TryGetValue<double>(out var d) => new FloatValueSyntax(d),
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String => new StringValueSyntax(v.GetValue<string>()),
        _ => new StringValueSyntax(value?.ToJsonString() ?? string.Empty),
    };

    private static InlineTableSyntax InlineTable(JsonObject table) =>
        new([.. table.Select(p => new KeyValueSyntax(new KeySyntax { Key = KeyPart(p.Key) }, ToToml(p.Value)) { EndOfLineToken = null })]);

    private static JsonNode? ToJson(ValueSyntax? value) => value switch
    {
        StringValueSyntax s => JsonValue.Create(s.Value),
        BooleanValueSyntax b => JsonValue.Create(b.Value),
        IntegerValueSyntax i => JsonValue.Create(i.Value),
        FloatValueSyntax f => JsonValue.Create(f.Value),
        ArraySyntax a => new JsonArray([.. a.Items.Select(i => ToJson(i.Value))]),
        InlineTableSyntax t => InlineToJson(t),
        _ => JsonValue.Create(value?.ToString()?.Trim()),
    };

    private static JsonObject InlineToJson(InlineTableSyntax table)
    {
        var result = new JsonObject();
        foreach (var item in table.Items)
        {
            Set(result, Parts(item.KeyValue!.Key!), ToJson(item.KeyValue.Value));
        }

        return result;
    }

    /// <summary>Sets a dotted key (<c>tools.whoami.approval_mode</c>) as nested objects.</summary>
    private static void Set(JsonObject target, List<string> parts, JsonNode? value)
    {
        foreach (var part in parts.Take(parts.Count - 1))
        {
            target = target[part] as JsonObject ?? (JsonObject)(target[part] = new JsonObject());
        }

        target[parts[^1]] = value;
    }

    /// <summary>A key's parts, unquoted: <c>mcp_servers."my.server"</c> is <c>["mcp_servers", "my.server"]</c>.</summary>
    private static List<string> Parts(KeySyntax key)
    {
        var parts = new List<string> { Part(key.Key) };
        foreach (var dotted in key.DotKeys)
        {
            parts.Add(Part(dotted.Key));
        }

        return parts;
    }

    private static string Part(BareKeyOrStringValueSyntax? part) => part switch
    {
        BareKeySyntax bare => bare.Key?.Text ?? string.Empty,
        StringValueSyntax quoted => quoted.Value ?? string.Empty,
        _ => string.Empty,
    };

    /// <summary>The text ends with one line break, as a TOML file should.</summary>
    private static string Ensure(string text) => text.Length == 0 || text.EndsWith('\n') ? text : text + "\n";
}
