using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Latchkey.Diagnostics;

namespace Latchkey.Mcp;

/// <summary>A client's configuration file, parsed, with one server entry read, set or removed.</summary>
internal interface IMcpConfigDocument
{
    /// <summary>The server entry named <paramref name="name"/>, as JSON (a TOML table converted), or null.</summary>
    JsonObject? Entry(string name);

    /// <summary>The file's text with the entry <paramref name="name"/> set to <paramref name="entry"/> and nothing else changed.</summary>
    string WithEntry(string name, JsonObject entry);

    /// <summary>The file's text without the entry <paramref name="name"/>, nothing else changed.</summary>
    string WithoutEntry(string name);
}

/// <summary>
/// A JSON (or JSONC) configuration file edited by splicing its text: the document is read token by token with
/// <see cref="Utf8JsonReader"/> to find the byte ranges of the servers object and of each entry in it, and only the
/// one entry's bytes are replaced, inserted or cut out. Every other byte (other entries, unknown keys, comments,
/// key order, indentation, line endings) stays as it was.
/// </summary>
/// <remarks>
/// Comments and trailing commas are accepted only for <see cref="McpConfigFormat.JsonWithComments"/>; for a strict
/// client they are parse errors, as they would be for the client. A file that does not parse raises an
/// <see cref="ActionableException"/> naming the file, line and column; nothing is written.
/// </remarks>
internal sealed class JsonConfigDocument : IMcpConfigDocument
{
    private readonly byte[] _bytes;
    private readonly string _serversKey;
    private readonly bool _bom;
    private readonly string _newLine;
    private readonly string _unit;
    private readonly Container _root;
    private readonly Member? _servers;
    private readonly Container? _serversObject;

    private JsonConfigDocument(string path, string text, string serversKey, bool allowComments)
    {
        _bom = text.StartsWith('\uFEFF');
        var body = _bom ? text[1..] : text;
        if (string.IsNullOrWhiteSpace(body))
        {
            body = "{}";
        }

        _bytes = Encoding.UTF8.GetBytes(body);
        _serversKey = serversKey;
        _newLine = body.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var reader = new Utf8JsonReader(_bytes, new JsonReaderOptions
        {
            CommentHandling = allowComments ? JsonCommentHandling.Skip : JsonCommentHandling.Disallow,
            AllowTrailingCommas = allowComments,
        });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw NotAnObject(path, reader, "the file is not a JSON object ({ ... })");
            }

            _root = ReadObject(ref reader, serversKey, path, out _servers, out _serversObject);
            if (reader.Read())
            {
                throw NotAnObject(path, reader, "there is more after the closing '}'");
            }
        }
        catch (JsonException ex)
        {
            throw ParseError(path, (ex.LineNumber ?? 0) + 1, (ex.BytePositionInLine ?? 0) + 1, FirstSentence(ex.Message), allowComments);
        }

        _unit = _root.Members.Count > 0 && Indent(_root.Members[0].NameStart) is { Length: > 0 } u ? u : "  ";
    }

    /// <summary>Parses <paramref name="text"/> (the file at <paramref name="path"/>, for errors; empty for a new file).</summary>
    /// <exception cref="ActionableException">The text is not JSON the client would read, or its servers key holds no object.</exception>
    public static JsonConfigDocument Parse(string path, string text, string serversKey, bool allowComments) =>
        new(path, text, serversKey, allowComments);

    public JsonObject? Entry(string name)
    {
        if (_serversObject?.Members.FirstOrDefault(m => m.Name == name) is not { } member)
        {
            return null;
        }

        var node = JsonNode.Parse(_bytes.AsSpan(member.ValueStart, member.ValueEnd - member.ValueStart), documentOptions: new JsonDocumentOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
        });
        return node as JsonObject ?? new JsonObject { ["(not an object)"] = node?.DeepClone() };
    }

    public string WithEntry(string name, JsonObject entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (_serversObject is { } servers)
        {
            if (servers.Members.FirstOrDefault(m => m.Name == name) is { } existing)
            {
                return Splice(existing.ValueStart, existing.ValueEnd, Render(entry, Indent(existing.NameStart)));
            }

            return Insert(servers, Indent(_servers!.NameStart), name, entry);
        }

        return Insert(_root, string.Empty, _serversKey, new JsonObject { [name] = entry.DeepClone() });
    }

    public string WithoutEntry(string name)
    {
        if (_serversObject is not { } servers || servers.Members.FindIndex(m => m.Name == name) is var i && i < 0)
        {
            return Text();
        }

        var member = servers.Members[i];
        var start = LineStartIfBlank(member.NameStart);
        var end = member.ValueEnd;
        if (FindComma(end) is { } after)
        {
            end = EndOfLineIfBlank(after + 1); // this entry's own comma, and the rest of its line when nothing else is on it
        }
        else if (i > 0 && FindComma(servers.Members[i - 1].ValueEnd) is { } before)
        {
            // The last entry: the comma before it goes too (the previous entry keeps its trailing comments).
            return Cut((before, before + 1), (start, EndOfLineIfBlank(end)));
        }
        else
        {
            end = EndOfLineIfBlank(end);
        }

        return Cut((start, end));
    }

    /// <summary>The file's text unchanged (with its byte-order mark if it had one).</summary>
    public string Text() => (_bom ? "\uFEFF" : string.Empty) + Encoding.UTF8.GetString(_bytes);

    /// <summary>The text without the byte ranges <paramref name="ranges"/> (in order, not overlapping).</summary>
    private string Cut(params (int Start, int End)[] ranges)
    {
        var result = new StringBuilder(_bytes.Length);
        if (_bom)
        {
            result.Append('\uFEFF');
        }

        var at = 0;
        foreach (var (start, end) in ranges)
        {
            result.Append(Encoding.UTF8.GetString(_bytes.AsSpan(at, start - at)));
            at = end;
        }

        result.Append(Encoding.UTF8.GetString(_bytes.AsSpan(at)));
        return result.ToString();
    }

    /// <summary><paramref name="name"/> as a JSON string (escaped as System.Text.Json escapes it; no reflection, so Native AOT keeps it).</summary>
    private static string Quote(string name)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStringValue(name);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Adds <paramref name="name"/> at the end of <paramref name="container"/>, indented one step in from <paramref name="containerIndent"/>.</summary>
    private string Insert(Container container, string containerIndent, string name, JsonObject value)
    {
        var indent = container.Members.Count > 0 ? Indent(container.Members[^1].NameStart) : containerIndent + _unit;
        var member = $"{Quote(name)}: {Render(value, indent)}";
        if (container.Members.Count > 0)
        {
            return Splice(container.Members[^1].ValueEnd, container.Members[^1].ValueEnd, $",{_newLine}{indent}{member}");
        }

        return Splice(container.Open + 1, container.Open + 1, $"{_newLine}{indent}{member}{_newLine}{containerIndent}");
    }

    /// <summary>A value written as the file writes its values: indented by its unit, lines after the first led by <paramref name="indent"/>.</summary>
    private string Render(JsonObject value, string indent)
    {
        var text = value.ToJsonString(new JsonSerializerOptions
        {
            WriteIndented = true,
            IndentCharacter = _unit.Length > 0 && _unit[0] == '\t' ? '\t' : ' ',
            IndentSize = Math.Max(1, _unit.Length),
            NewLine = _newLine,
        });
        return text.Replace(_newLine, _newLine + indent, StringComparison.Ordinal);
    }

    private string Splice(int start, int end, string insert)
    {
        var result = new StringBuilder(_bytes.Length + insert.Length + 1);
        if (_bom)
        {
            result.Append('\uFEFF');
        }

        result.Append(Encoding.UTF8.GetString(_bytes.AsSpan(0, start)));
        result.Append(insert);
        result.Append(Encoding.UTF8.GetString(_bytes.AsSpan(end)));
        return result.ToString();
    }

    /// <summary>The whitespace that starts the line holding <paramref name="offset"/>, up to the first other character.</summary>
    private string Indent(int offset)
    {
        var lineStart = offset;
        while (lineStart > 0 && _bytes[lineStart - 1] is not ((byte)'\n' or (byte)'\r'))
        {
            lineStart--;
        }

        var end = lineStart;
        while (end < offset && _bytes[end] is (byte)' ' or (byte)'\t')
        {
            end++;
        }

        return Encoding.UTF8.GetString(_bytes.AsSpan(lineStart, end - lineStart));
    }

    private int LineStartIfBlank(int offset)
    {
        var i = offset;
        while (i > 0 && _bytes[i - 1] is (byte)' ' or (byte)'\t')
        {
            i--;
        }

        return i == 0 || _bytes[i - 1] is (byte)'\n' ? i : offset;
    }

    private int EndOfLineIfBlank(int offset)
    {
        var i = offset;
        while (i < _bytes.Length && _bytes[i] is (byte)' ' or (byte)'\t' or (byte)'\r')
        {
            i++;
        }

        return i < _bytes.Length && _bytes[i] == (byte)'\n' ? i + 1 : offset;
    }

    /// <summary>
    /// The offset of the comma that follows <paramref name="from"/> with only whitespace and comments between, or
    /// null when the next token is something else (a closing brace).
    /// </summary>
    private int? FindComma(int from)
    {
        var i = from;
        while (i < _bytes.Length)
        {
            var b = _bytes[i];
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                i++;
            }
            else if (b == (byte)'/' && i + 1 < _bytes.Length && _bytes[i + 1] == (byte)'/')
            {
                while (i < _bytes.Length && _bytes[i] != (byte)'\n')
                {
                    i++;
                }
            }
            else if (b == (byte)'/' && i + 1 < _bytes.Length && _bytes[i + 1] == (byte)'*')
            {
                var close = _bytes.AsSpan(i + 2).IndexOf("*/"u8);
                i = close < 0 ? _bytes.Length : i + 2 + close + 2;
            }
            else
            {
                return b == (byte)',' ? i : null;
            }
        }

        return null;
    }

    /// <summary>Reads an object whose <c>{</c> the reader is on, recording each member's byte ranges; descends into <paramref name="serversKey"/>.</summary>
    private Container ReadObject(ref Utf8JsonReader reader, string? serversKey, string path, out Member? servers, out Container? serversObject)
    {
        var container = new Container((int)reader.TokenStartIndex);
        servers = null;
        serversObject = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var nameStart = (int)reader.TokenStartIndex;
            var name = reader.GetString()!;
            reader.Read();
            var valueStart = (int)reader.TokenStartIndex;
            if (serversKey is not null && name == serversKey && servers is null)
            {
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw NotAnObject(path, reader, $"\"{serversKey}\" is not an object");
                }

                serversObject = ReadObject(ref reader, null, path, out _, out _);
            }
            else
            {
                reader.Skip();
            }

            var member = new Member(name, nameStart, valueStart, End(ref reader));
            if (serversKey is not null && name == serversKey && servers is null)
            {
                servers = member;
            }

            container.Members.Add(member);
        }

        return container;
    }

    /// <summary>The offset just past the token the reader is on (the last token of a value).</summary>
    private static int End(ref Utf8JsonReader reader) => (int)reader.TokenStartIndex + reader.TokenType switch
    {
        JsonTokenType.EndObject or JsonTokenType.EndArray => 1,
        JsonTokenType.String => reader.ValueSpan.Length + 2,
        _ => reader.ValueSpan.Length,
    };

    private ActionableException NotAnObject(string path, Utf8JsonReader reader, string what)
    {
        var offset = Math.Min((int)reader.TokenStartIndex, _bytes.Length);
        var before = _bytes.AsSpan(0, offset);
        var line = before.Count((byte)'\n') + 1;
        var column = offset - (before.LastIndexOf((byte)'\n') + 1) + 1;
        return new ActionableException(
            $"{path} cannot hold MCP servers at line {line}, column {column}: {what}. Nothing was changed; Latchkey never writes over a file it does not understand.",
            $"Fix line {line} of {path} by hand, or move the file aside, then run the command again.");
    }

    private static ActionableException ParseError(string path, long line, long column, string what, bool allowComments) =>
        new($"{path} does not parse as {(allowComments ? "JSON with comments" : "JSON")} at line {line}, column {column}: {what} Nothing was changed; Latchkey never writes over a file it cannot read.",
            $"Fix line {line} of {path} (the client cannot read it either), or move the file aside, then run the command again.");

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).Trim();
    }

    /// <summary>An object's <c>{</c> offset and its members in order.</summary>
    private sealed class Container(int open)
    {
        public int Open { get; } = open;

        public List<Member> Members { get; } = [];
    }

    /// <summary>One member: its name, where its name starts, and where its value starts and ends (bytes).</summary>
    private sealed record Member(string Name, int NameStart, int ValueStart, int ValueEnd);
}
