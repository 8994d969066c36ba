using System.Buffers;
using System.Text.Json;

namespace Latchkey.Usage;

/// <summary>
/// Reads the token usage an Anthropic or OpenAI answer reports while its bytes pass on their way to the agent:
/// <see cref="Observe"/> is handed each chunk after it was written, looks at it in place and keeps nothing of it but
/// a JSON token cut by the chunk's end. One instance per answer, used by one thread.
/// </summary>
/// <remarks>
/// <para><b>What is read.</b> The <c>usage</c> object at the top of a JSON value, or of its <c>message</c> (Anthropic's
/// <c>message_start</c> event) or <c>response</c> (OpenAI Responses events such as <c>response.completed</c>):
/// Anthropic's <c>input_tokens</c>, <c>cache_creation_input_tokens</c>, <c>cache_read_input_tokens</c>,
/// <c>output_tokens</c> (its <c>message_delta</c> events repeat them cumulatively); OpenAI chat completions'
/// <c>prompt_tokens</c>, <c>completion_tokens</c>, <c>prompt_tokens_details.cached_tokens</c> (in a stream, the final
/// chunk when <c>stream_options.include_usage</c> asked for it); the Responses API's <c>input_tokens</c>,
/// <c>output_tokens</c>, <c>input_tokens_details.cached_tokens</c>. A later value of a field replaces an earlier one
/// (every count in these events is cumulative). The model is the first <c>model</c> string found at those places.
/// OpenAI's input counts include the cached tokens; they are taken out so that the four counts never overlap
/// (<see cref="UsageTokens"/>).</para>
/// <para><b>How.</b> A JSON answer is fed whole to an incremental <see cref="Utf8JsonReader"/>; an event stream is
/// split into lines as the Server-Sent Events rules say (CR, LF or CRLF; a field's value less one leading space;
/// <c>data</c> lines of one event joined with LF; a blank line ends the event) and only the <c>data</c> of events whose
/// data is a JSON object is fed to it, one event at a time. Events that never carry usage (by their <c>event</c> type:
/// content deltas, pings, output items) are skipped unread.</para>
/// <para><b>Bounds, against a hostile upstream.</b> Memory: only a token split by a chunk boundary is carried, at most
/// <see cref="MaxTokenBytes"/>; a longer one, JSON nested deeper than <see cref="MaxDepth"/>, or any malformed JSON
/// ends the reading of that value (of the whole answer for a JSON answer, of that event for a stream) without an
/// exception leaving this class. Counts: one that is negative, not an integer or beyond a 64-bit integer is ignored;
/// one above <see cref="MaxTokensPerAnswer"/> is clamped to it. A model name longer than
/// <see cref="UsageCount.MaxNameLength"/> is ignored.</para>
/// </remarks>
internal sealed class UsageScanner : IDisposable
{
    /// <summary>The longest single JSON token (a string, usually) carried over a chunk boundary: 1 MiB.</summary>
    public const int MaxTokenBytes = 1024 * 1024;

    /// <summary>How deep JSON may nest before the value stops being read.</summary>
    public const int MaxDepth = 64;

    /// <summary>The most tokens one count of one answer is taken as: a billion, far above any context window.</summary>
    public const long MaxTokensPerAnswer = 1_000_000_000;

    /// <summary>The longest <c>event</c> type kept to decide whether to read an event's data.</summary>
    private const int MaxEventTypeBytes = 64;

    private readonly bool _stream;
    private readonly byte[] _eventType = new byte[MaxEventTypeBytes];
    private readonly Context[] _contexts = new Context[MaxDepth + 1];
    private JsonReaderState _json = new(new JsonReaderOptions { MaxDepth = MaxDepth });
    private byte[]? _carry;
    private int _carryLength;
    private bool _jsonDone;
    private Field _pending;

    // event-stream framing
    private Line _line = Line.Start;
    private bool _afterCr;
    private bool _atStreamStart = true;
    private int _fieldLength;
    private ulong _field;
    private int _eventTypeLength;
    private EventData _data = EventData.None;
    private bool _skipSpace;

    // what was found
    private long? _input;
    private long? _output;
    private long? _promptTokens;
    private long? _completionTokens;
    private long? _cacheCreation;
    private long? _cacheRead;
    private long? _cachedTokens;
    private bool _sawUsage;

    private UsageScanner(bool stream) => _stream = stream;

    private enum Context : byte
    {
        Other,
        Root,
        Wrapper,
        Usage,
        Details,
    }

    private enum Field : byte
    {
        Other,
        Model,
        Message,
        Usage,
        Details,
        InputTokens,
        OutputTokens,
        PromptTokens,
        CompletionTokens,
        CacheCreation,
        CacheRead,
        CachedTokens,
    }

    private enum Line : byte
    {
        Start,
        Field,
        Data,
        EventType,
        Skip,
    }

    /// <summary>Where the current event's data stands: none yet, fed to the reader, or not read.</summary>
    private enum EventData : byte
    {
        None,
        Reading,
        Skipped,
    }

    /// <summary>The model the answer named, or null.</summary>
    public string? Model { get; private set; }

    /// <summary>
    /// A scanner for an answer with this <c>Content-Type</c> and <c>Content-Encoding</c>, or null when such an answer
    /// carries no usage this class reads: not JSON or an event stream, or encoded (compressed) bytes.
    /// </summary>
    public static UsageScanner? For(string? contentType, string? contentEncoding)
    {
        if (!string.IsNullOrEmpty(contentEncoding) && !contentEncoding.Trim().Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var mediaType = contentType is null ? string.Empty : contentType.Split(';', 2)[0].Trim();
        if (mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase))
        {
            return new UsageScanner(stream: true);
        }

        return mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)
            ? new UsageScanner(stream: false)
            : null;
    }

    /// <summary>The usage found so far, or null when no <c>usage</c> object was seen.</summary>
    public UsageTokens? Tokens
    {
        get
        {
            if (!_sawUsage)
            {
                return null;
            }

            // OpenAI counts cached tokens inside its input count; Anthropic counts them apart.
            var openAi = _promptTokens is not null || _cachedTokens is not null;
            var cacheRead = openAi ? _cachedTokens ?? 0 : _cacheRead ?? 0;
            var input = _promptTokens ?? _input ?? 0;
            if (openAi)
            {
                input = Math.Max(0, input - cacheRead);
            }

            return new UsageTokens(input, _completionTokens ?? _output ?? 0, openAi ? 0 : _cacheCreation ?? 0, cacheRead);
        }
    }

    /// <summary>Looks at the next chunk of the answer (already on its way to the agent). Never throws for what the bytes hold.</summary>
    public void Observe(ReadOnlySpan<byte> chunk)
    {
        if (_stream)
        {
            ObserveStream(chunk);
        }
        else
        {
            Feed(chunk);
        }
    }

    public void Dispose() => ReleaseCarry();

    // ---- event stream: lines and fields ----

    private void ObserveStream(ReadOnlySpan<byte> bytes)
    {
        if (_atStreamStart)
        {
            if (bytes.Length < 3 && "\uFEFF"u8.StartsWith(bytes))
            {
                return; // a BOM split by a chunk boundary is too rare to track: the next chunk's bytes still parse
            }

            _atStreamStart = false;
            if (bytes.StartsWith("\uFEFF"u8))
            {
                bytes = bytes[3..];
            }
        }

        while (!bytes.IsEmpty)
        {
            if (_afterCr)
            {
                _afterCr = false;
                if (bytes[0] == (byte)'\n')
                {
                    bytes = bytes[1..];
                    continue;
                }
            }

            var end = bytes.IndexOfAny((byte)'\r', (byte)'\n');
            var run = end < 0 ? bytes : bytes[..end];
            Take(run);
            if (end < 0)
            {
                return;
            }

            _afterCr = bytes[end] == (byte)'\r';
            EndLine();
            bytes = bytes[(end + 1)..];
        }
    }

    /// <summary>Part of a line, without its end.</summary>
    private void Take(ReadOnlySpan<byte> run)
    {
        while (!run.IsEmpty)
        {
            switch (_line)
            {
                case Line.Start:
                case Line.Field:
                    _line = Line.Field;
                    var colon = run.IndexOf((byte)':');
                    var name = colon < 0 ? run : run[..colon];
                    foreach (var b in name)
                    {
                        _field = _fieldLength < 8 ? _field << 8 | b : _field;
                        _fieldLength++;
                    }

                    if (colon < 0)
                    {
                        return;
                    }

                    run = run[(colon + 1)..];
                    _skipSpace = true;
                    _line = StartValue();
                    break;
                case Line.Data:
                    if (_skipSpace)
                    {
                        _skipSpace = false;
                        if (run[0] == (byte)' ')
                        {
                            run = run[1..];
                            continue;
                        }
                    }

                    if (_data == EventData.None)
                    {
                        _data = run[0] == (byte)'{' && !SkippedEventType() ? EventData.Reading : EventData.Skipped;
                    }

                    if (_data == EventData.Reading)
                    {
                        Feed(run);
                    }

                    return;
                case Line.EventType:
                    if (_skipSpace)
                    {
                        _skipSpace = false;
                        if (run[0] == (byte)' ')
                        {
                            run = run[1..];
                            continue;
                        }
                    }

                    var room = Math.Min(run.Length, MaxEventTypeBytes - _eventTypeLength);
                    run[..room].CopyTo(_eventType.AsSpan(_eventTypeLength));
                    _eventTypeLength += room;
                    return;
                default:
                    return;
            }
        }
    }

    /// <summary>What the field name read so far starts: the value of <c>data</c> or <c>event</c>, or a line to skip.</summary>
    private Line StartValue()
    {
        var line = (_fieldLength, _field) switch
        {
            (4, 0x64_61_74_61) => Line.Data,             // "data"
            (5, 0x65_76_65_6e_74) => Line.EventType,     // "event"
            _ => Line.Skip,
        };
        if (line == Line.EventType)
        {
            _eventTypeLength = 0; // a later event field replaces an earlier one
        }
        else if (line == Line.Data && _data == EventData.Reading)
        {
            Feed("\n"u8); // data lines of one event are joined with LF
        }

        return line;
    }

    private void EndLine()
    {
        switch (_line)
        {
            case Line.Start:
                EndEvent(); // a blank line
                return;
            case Line.Field when _fieldLength > 0:
                // a field name alone: an empty value ("data" adds an empty line, which JSON does not mind)
                _line = StartValue();
                break;
        }

        _line = Line.Start;
        _field = 0;
        _fieldLength = 0;
    }

    private void EndEvent()
    {
        _data = EventData.None;
        _eventTypeLength = 0;
        ResetJson();
    }

    /// <summary>
    /// Whether the current event's type says it carries no usage: Anthropic's content blocks and pings, OpenAI
    /// Responses' deltas, finished parts and output items. Events without a type (chat completion chunks), and every
    /// other type, are read.
    /// </summary>
    private bool SkippedEventType()
    {
        var type = _eventType.AsSpan(0, _eventTypeLength);
        return type.StartsWith("content_block_"u8) || type.SequenceEqual("ping"u8)
            || (type.StartsWith("response."u8) && (type.EndsWith(".delta"u8) || type.EndsWith(".done"u8) || type.EndsWith(".added"u8)));
    }

    // ---- JSON ----

    private void ResetJson()
    {
        _json = new JsonReaderState(new JsonReaderOptions { MaxDepth = MaxDepth });
        _carryLength = 0;
        _jsonDone = false;
        _pending = Field.Other;
    }

    /// <remarks>
    /// Complete tokens are read where they are. Only a token cut by the end of <paramref name="bytes"/> is carried; the
    /// next bytes are appended to it a slice at a time (doubling from 4 KiB) until it is complete, then read in place
    /// again, so a chunk is copied only as far as the cut token reaches into it.
    /// </remarks>
    private void Feed(ReadOnlySpan<byte> bytes)
    {
        while (!_jsonDone && !bytes.IsEmpty)
        {
            if (_carryLength == 0)
            {
                var used = Read(bytes);
                if (!_jsonDone && used < bytes.Length)
                {
                    Carry(bytes[used..]);
                }

                return;
            }

            var step = Math.Min(bytes.Length, Math.Max(4096, _carryLength));
            if (!Carry(bytes[..step]))
            {
                return;
            }

            bytes = bytes[step..];
            var consumed = Read(_carry!.AsSpan(0, _carryLength));
            if (_jsonDone)
            {
                _carryLength = 0;
                return;
            }

            _carry.AsSpan(consumed, _carryLength - consumed).CopyTo(_carry);
            _carryLength -= consumed;
        }
    }

    /// <summary>Appends to the carried bytes; past <see cref="MaxTokenBytes"/> the value is given up.</summary>
    private bool Carry(ReadOnlySpan<byte> bytes)
    {
        var needed = _carryLength + bytes.Length;
        if (needed > MaxTokenBytes)
        {
            GiveUp();
            return false;
        }

        if (_carry is null || _carry.Length < needed)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 4096));
            _carry?.AsSpan(0, _carryLength).CopyTo(grown);
            ReleaseCarry();
            _carry = grown;
        }

        bytes.CopyTo(_carry.AsSpan(_carryLength));
        _carryLength = needed;
        return true;
    }

    private void ReleaseCarry()
    {
        if (_carry is not null)
        {
            ArrayPool<byte>.Shared.Return(_carry);
            _carry = null;
        }
    }

    private void GiveUp()
    {
        _jsonDone = true;
        _carryLength = 0;
    }

    /// <summary>Reads the complete tokens of <paramref name="bytes"/>; returns how many bytes they took.</summary>
    private int Read(ReadOnlySpan<byte> bytes)
    {
        var reader = new Utf8JsonReader(bytes, isFinalBlock: false, _json);
        try
        {
            while (reader.Read())
            {
                OnToken(ref reader);
                if (reader.CurrentDepth == 0 && reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray)
                {
                    _jsonDone = true; // one value per answer, one per event
                    return bytes.Length;
                }
            }
        }
        catch (JsonException)
        {
            GiveUp();
            return bytes.Length;
        }

        _json = reader.CurrentState;
        return (int)reader.BytesConsumed;
    }

    private void OnToken(ref Utf8JsonReader reader)
    {
        var depth = reader.CurrentDepth;
        var container = depth == 0 ? Context.Other : depth <= MaxDepth ? _contexts[depth - 1] : Context.Other;
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                var context = depth == 0 ? Context.Root : (container, _pending) switch
                {
                    (Context.Root, Field.Message) => Context.Wrapper,
                    (Context.Root or Context.Wrapper, Field.Usage) => Context.Usage,
                    (Context.Usage, Field.Details) => Context.Details,
                    _ => Context.Other,
                };
                if (context == Context.Usage)
                {
                    _sawUsage = true;
                }

                _contexts[depth] = context;
                break;
            case JsonTokenType.StartArray:
                _contexts[depth] = Context.Other;
                break;
            case JsonTokenType.PropertyName:
                _pending = container == Context.Other ? Field.Other : Name(ref reader, container);
                return;
            case JsonTokenType.String when _pending == Field.Model && container is Context.Root or Context.Wrapper && Model is null:
                if (!reader.ValueIsEscaped && reader.ValueSpan.Length <= UsageCount.MaxNameLength
                    || reader.ValueIsEscaped && reader.ValueSpan.Length <= UsageCount.MaxNameLength * 6)
                {
                    var model = reader.GetString();
                    Model = model is { Length: > 0 and <= UsageCount.MaxNameLength } ? model : null;
                }

                break;
            case JsonTokenType.Number when container is Context.Usage or Context.Details:
                Count(ref reader, container);
                break;
        }

        _pending = Field.Other;
    }

    private static Field Name(ref Utf8JsonReader reader, Context container) => container switch
    {
        Context.Root or Context.Wrapper when reader.ValueTextEquals("usage"u8) => Field.Usage,
        Context.Root or Context.Wrapper when reader.ValueTextEquals("model"u8) => Field.Model,
        Context.Root when reader.ValueTextEquals("message"u8) || reader.ValueTextEquals("response"u8) => Field.Message,
        Context.Usage when reader.ValueTextEquals("input_tokens"u8) => Field.InputTokens,
        Context.Usage when reader.ValueTextEquals("output_tokens"u8) => Field.OutputTokens,
        Context.Usage when reader.ValueTextEquals("prompt_tokens"u8) => Field.PromptTokens,
        Context.Usage when reader.ValueTextEquals("completion_tokens"u8) => Field.CompletionTokens,
        Context.Usage when reader.ValueTextEquals("cache_creation_input_tokens"u8) => Field.CacheCreation,
        Context.Usage when reader.ValueTextEquals("cache_read_input_tokens"u8) => Field.CacheRead,
        Context.Usage when reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("input_tokens_details"u8) => Field.Details,
        Context.Details when reader.ValueTextEquals("cached_tokens"u8) => Field.CachedTokens,
        _ => Field.Other,
    };

    private void Count(ref Utf8JsonReader reader, Context container)
    {
        if (!reader.TryGetInt64(out var value) || value < 0)
        {
            return; // not a count: a fraction, an exponent, negative, or beyond 64 bits
        }

        value = Math.Min(value, MaxTokensPerAnswer);
        switch (container, _pending)
        {
            case (Context.Usage, Field.InputTokens): _input = value; break;
            case (Context.Usage, Field.OutputTokens): _output = value; break;
            case (Context.Usage, Field.PromptTokens): _promptTokens = value; break;
            case (Context.Usage, Field.CompletionTokens): _completionTokens = value; break;
            case (Context.Usage, Field.CacheCreation): _cacheCreation = value; break;
            case (Context.Usage, Field.CacheRead): _cacheRead = value; break;
            case (Context.Details, Field.CachedTokens): _cachedTokens = value; break;
        }
    }
}

/// <summary>
/// One answer's token counts, as <see cref="UsageScanner"/> read them: four counts that do not overlap.
/// </summary>
/// <param name="Input">Input tokens not read from or written to a prompt cache.</param>
/// <param name="Output">Output tokens.</param>
/// <param name="CacheCreation">Input tokens written to a prompt cache.</param>
/// <param name="CacheRead">Input tokens read from a prompt cache.</param>
internal readonly record struct UsageTokens(long Input, long Output, long CacheCreation, long CacheRead);
