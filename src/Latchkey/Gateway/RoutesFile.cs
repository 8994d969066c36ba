using System.Text.Json;
using System.Text.Json.Serialization;
using Latchkey.Store;

namespace Latchkey.Gateway;

/// <summary>One upstream choice: a credential and, optionally, the model name to send it instead.</summary>
internal sealed record RouteTarget
{
    public required string Credential { get; init; }

    /// <summary>The model name the upstream knows; null keeps the agent's.</summary>
    public string? Model { get; init; }
}

/// <summary>A model name or pattern (<c>*</c> matches any run of characters) and its ordered targets.</summary>
internal sealed record ModelRoute
{
    public required string Model { get; init; }

    public required IReadOnlyList<RouteTarget> Targets { get; init; }

    public bool Matches(string model) => Glob(Model, model);

    private static bool Glob(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        while (true)
        {
            var star = pattern.IndexOf('*');
            if (star < 0)
            {
                return pattern.Equals(text, StringComparison.Ordinal);
            }

            if (!text.StartsWith(pattern[..star], StringComparison.Ordinal))
            {
                return false;
            }

            text = text[star..];
            pattern = pattern[(star + 1)..];
            if (pattern.IsEmpty)
            {
                return true;
            }

            for (var i = 0; i <= text.Length; i++)
            {
                if (Glob(pattern, text[i..]))
                {
                    return true;
                }
            }

            return false;
        }
    }
}

/// <summary>A router: ordered routes, the first whose pattern matches the requested model wins.</summary>
internal sealed record Router
{
    public required IReadOnlyList<ModelRoute> Routes { get; init; }
}

/// <summary>The routes file, <c>routes.json</c> in the home folder (format in docs/gateway.md).</summary>
internal sealed record RoutesDocument
{
    public IReadOnlyDictionary<string, Router> Routers { get; init; } = new Dictionary<string, Router>();
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(RoutesDocument))]
internal sealed partial class RoutesJsonContext : JsonSerializerContext;

/// <summary>
/// Loads <c>routes.json</c> and reloads it when it changes (checked at most once a second). A file that does not
/// parse keeps the last good routes in force, and the error is reported on every router request until fixed.
/// </summary>
internal sealed class RoutesFile(StoreHome home, TimeProvider time)
{
    /// <summary>The file's name in the home folder.</summary>
    public const string FileName = "routes.json";

    private readonly Lock _gate = new();
    private RoutesDocument _current = new();
    private string? _error;
    private DateTime _loadedStamp = DateTime.MinValue;
    private DateTimeOffset _checkedAt = DateTimeOffset.MinValue;

    public string Path { get; } = System.IO.Path.Combine(home.Path, FileName);

    /// <summary>The routes in force, and the problem with the file on disk if it has one.</summary>
    public (RoutesDocument Routes, string? Error) Current()
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (now - _checkedAt < TimeSpan.FromSeconds(1))
            {
                return (_current, _error);
            }

            _checkedAt = now;
            var stamp = File.Exists(Path) ? File.GetLastWriteTimeUtc(Path) : DateTime.MinValue;
            if (stamp == _loadedStamp)
            {
                return (_current, _error);
            }

            _loadedStamp = stamp;
            (_current, _error) = stamp == DateTime.MinValue ? (new RoutesDocument(), null) : Load(Path, _current);
            return (_current, _error);
        }
    }

    /// <summary>Parses and checks a routes file; on failure returns <paramref name="fallback"/> and the reason.</summary>
    public static (RoutesDocument, string?) Load(string path, RoutesDocument fallback)
    {
        try
        {
            var document = JsonSerializer.Deserialize(File.ReadAllBytes(path), RoutesJsonContext.Default.RoutesDocument) ?? new RoutesDocument();
            foreach (var (name, router) in document.Routers)
            {
                if (router.Routes is null || router.Routes.Count == 0)
                {
                    return (fallback, $"{path}: router '{name}' has no routes.");
                }

                foreach (var route in router.Routes)
                {
                    if (string.IsNullOrEmpty(route.Model) || route.Targets is null || route.Targets.Count == 0 || route.Targets.Any(t => string.IsNullOrEmpty(t.Credential)))
                    {
                        return (fallback, $"{path}: router '{name}' has a route without a model pattern or without targets (each needs a 'credential').");
                    }
                }
            }

            return (document, null);
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return (fallback, $"{path} cannot be read: {ex.Message}");
        }
    }
}
