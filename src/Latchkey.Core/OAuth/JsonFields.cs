using System.Text.Json;

namespace Latchkey.OAuth;

/// <summary>
/// Small readers for JSON members that tolerate what a server should not send by returning null: the wrong type,
/// or a string with a lone surrogate escape (<c>"\ud800"</c>), which JSON allows but which has no .NET string form
/// (<see cref="JsonElement.GetString"/> throws for it), so a hostile server cannot turn a field into an exception.
/// </summary>
internal static class JsonFields
{
    public static string? String(this JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? Text(v) : null;

    public static long? Long(this JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n
        : e.TryGetProperty(name, out var s) && long.TryParse(Text(s), out var p) ? p : null;

    public static bool? Bool(this JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    public static IReadOnlyList<string>? Strings(this JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? [.. v.EnumerateArray().Select(Text).OfType<string>()]
            : null;

    private static string? Text(JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.String)
        {
            return null;
        }

        try
        {
            return v.GetString();
        }
        catch (InvalidOperationException)
        {
            return null; // a lone surrogate escape: read as absent, like a value of the wrong type
        }
    }
}
