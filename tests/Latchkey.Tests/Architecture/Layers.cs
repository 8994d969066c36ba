using System.Text;
using System.Text.RegularExpressions;

namespace Latchkey.Tests.Architecture;

/// <summary>One folder layer of <c>src/</c>: its folders, the namespace each declares, and its project.</summary>
/// <param name="Name">The layer's name, as docs/architecture.md draws it.</param>
/// <param name="Project">The project it is in: a layer may use only its own project and the ones it references.</param>
/// <param name="Paths">Its folders (ending in '/') or files, relative to the repository.</param>
/// <param name="Namespaces">The namespaces its files declare (one per folder, in the same order).</param>
internal sealed record Layer(string Name, string Project, string[] Paths, string[] Namespaces);

/// <summary>
/// The direction of imports drawn in docs/architecture.md, and the reader that checks a source file against it.
/// Layers come in tiers, top to bottom; a file may use its own layer and any layer of a lower tier in its own
/// project or in a project its project references (<c>latchkey</c> and <c>latchkey-token</c> reference
/// <c>Latchkey.Core</c>; Core references neither). Layers of one tier do not use each other.
/// </summary>
/// <remarks>
/// <para><b>What counts as a use.</b> A <c>using</c> directive (plain, <c>static</c>, <c>global</c> or an alias) of a
/// <c>Latchkey.*</c> namespace; a name qualified in code, <c>Latchkey.Gateway.Forwarder</c> or, from inside
/// <c>Latchkey.*</c>, <c>Gateway.Forwarder</c>; and the same in an XML doc's <c>cref</c> (the compiler resolves those
/// too). Other comments and the text of string literals are not uses; an interpolated string's holes are code.</para>
/// <para><b>A false alarm.</b> A member named like a folder and used unqualified (<c>Store.GetAsync</c> for a
/// property <c>Store</c>) reads as that folder: in a layer that may not use it, write <c>this.Store</c> or rename it.</para>
/// </remarks>
internal static partial class Layers
{
    private const string App = "latchkey";
    private const string Token = "latchkey-token";
    private const string Core = "Latchkey.Core";

    /// <summary>The drawing, top tier first.</summary>
    public static readonly Layer[][] Tiers =
    [
        [new("Program", App, ["src/Latchkey/Program.cs"], ["Latchkey"]), new("latchkey-token", Token, ["src/Latchkey.Token/"], ["Latchkey"])],
        [new("Cli", App, ["src/Latchkey/Cli/"], ["Latchkey.Cli"])],
        [new("Hosting", App, ["src/Latchkey/Hosting/"], ["Latchkey.Hosting"])],
        [
            new("Mcp", App, ["src/Latchkey/Mcp/"], ["Latchkey.Mcp"]),
            new("Dashboard", App, ["src/Latchkey/Dashboard/"], ["Latchkey.Dashboard"]),
            new("Ssh", App, ["src/Latchkey/Ssh/"], ["Latchkey.Ssh"]),
            new("Local", App, ["src/Latchkey/Local/"], ["Latchkey.Local"]),
            new("Observability", App, ["src/Latchkey/Observability/"], ["Latchkey.Observability"]),
        ],
        [new("Gateway", App, ["src/Latchkey/Gateway/"], ["Latchkey.Gateway"])],
        [new("Composition", Core, ["src/Latchkey.Core/Composition/"], ["Latchkey.Composition"])],
        [new("Tokens", Core, ["src/Latchkey.Core/Tokens/"], ["Latchkey.Tokens"])],
        [new("OAuth", Core, ["src/Latchkey.Core/OAuth/"], ["Latchkey.OAuth"])],
        [
            new("Http", Core, ["src/Latchkey.Core/Http/"], ["Latchkey.Http"]),
            new("Diagnostics", Core, ["src/Latchkey.Core/Diagnostics/"], ["Latchkey.Diagnostics"]),
        ],
        // The store keeps the audit log and the token usage: the store implements IAuditLog and IUsageLog, the log's
        // writer retries on a StoreException and carries the usage counts in its batches. One layer, three folders.
        [new("Store", Core, ["src/Latchkey.Core/Store/", "src/Latchkey.Core/Audit/", "src/Latchkey.Core/Usage/"], ["Latchkey.Store", "Latchkey.Audit", "Latchkey.Usage"])],
        [
            new("Text", Core, ["src/Latchkey.Core/Text/"], ["Latchkey.Text"]),
            // Metrics and traces: the one Meter and ActivitySource every layer above records on.
            new("Telemetry", Core, ["src/Latchkey.Core/Telemetry/"], ["Latchkey.Telemetry"]),
        ],
    ];

    private static readonly Dictionary<string, string[]> References = new(StringComparer.Ordinal)
    {
        [App] = [App, Core],
        [Token] = [Token, Core],
        [Core] = [Core],
    };

    /// <summary>A use of a namespace in a file: the line it is on and the text that names it.</summary>
    public sealed record Use(string Namespace, int Line, string Text);

    /// <summary>A use against the drawn direction, or a file in the wrong namespace or in no layer.</summary>
    public sealed record Violation(string File, int Line, string Problem)
    {
        public override string ToString() => $"{File}:{Line}: {Problem}";
    }

    /// <summary>The layer a source file (a path relative to the repository, with '/') belongs to, or null.</summary>
    public static (Layer Layer, int Tier, string Namespace)? LayerOf(string path)
    {
        for (var tier = 0; tier < Tiers.Length; tier++)
        {
            foreach (var layer in Tiers[tier])
            {
                for (var i = 0; i < layer.Paths.Length; i++)
                {
                    var p = layer.Paths[i];
                    if (p.EndsWith('/') ? path.StartsWith(p, StringComparison.Ordinal) : path == p)
                    {
                        return (layer, tier, layer.Namespaces[i]);
                    }
                }
            }
        }

        return null;
    }

    /// <summary>Everything wrong with one source file: its namespace, and every use against the direction.</summary>
    public static IEnumerable<Violation> Check(string path, string source)
    {
        if (LayerOf(path) is not { } found)
        {
            yield return new Violation(path, 1, "is in no layer of the drawing (add its folder to Layers.Tiers and docs/architecture.md)");
            yield break;
        }

        var (layer, tier, expected) = found;

        var code = CodeOf(source);
        var declared = DeclaredNamespace().Match(code) is { Success: true } m ? m.Groups[1].Value : "(none)";
        if (declared != expected)
        {
            yield return new Violation(path, 1, $"declares namespace '{declared}'; files in {layer.Name} declare '{expected}'");
        }

        foreach (var use in UsesIn(code).DistinctBy(u => (u.Namespace, u.Line)))
        {
            if (Resolve(use.Namespace) is not { } resolved)
            {
                yield return new Violation(path, use.Line, $"uses '{use.Namespace}', a namespace in no layer of the drawing ({use.Text})");
                continue;
            }

            var (target, targetTier) = resolved;
            if (target != layer && !(targetTier > tier && References[layer.Project].Contains(target.Project)))
            {
                yield return new Violation(path, use.Line, $"{layer.Name} uses {target.Name} ({use.Text}), against the drawn direction");
            }
        }
    }

    /// <summary>The <c>Latchkey.*</c> namespaces a file's code uses (see the remarks of <see cref="Layers"/>).</summary>
    public static IEnumerable<Use> UsesIn(string code)
    {
        var segments = string.Join('|', Tiers.SelectMany(t => t).SelectMany(l => l.Namespaces).Where(n => n != "Latchkey").Select(n => n["Latchkey.".Length..]));
        var relative = new Regex($@"(?<![\w.@])(?:global::)?((?:Latchkey\.)?(?:{segments}))\.(?=[A-Z_]\w*)", RegexOptions.CultureInvariant);
        var lines = code.Split('\n');
        for (var n = 0; n < lines.Length; n++)
        {
            var line = lines[n];
            if (UsingDirective().Match(line) is { Success: true } directive)
            {
                yield return new Use(directive.Groups[1].Value, n + 1, line.Trim());
                continue;
            }

            if (DeclaredNamespace().IsMatch(line))
            {
                continue;
            }

            foreach (Match m in QualifiedName().Matches(line))
            {
                yield return new Use(m.Groups[1].Value, n + 1, m.Value);
            }

            foreach (Match m in relative.Matches(line))
            {
                var name = m.Groups[1].Value;
                yield return new Use(name.StartsWith("Latchkey.", StringComparison.Ordinal) ? name : "Latchkey." + name, n + 1, m.Value + "…");
            }
        }
    }

    /// <summary>
    /// The code of a C# file with its comments and the text of its string literals taken out, line breaks kept (so
    /// line numbers stay right), the <c>cref</c>s of its doc comments kept as code, and an interpolated string's
    /// holes kept as the code they are.
    /// </summary>
    public static string CodeOf(string source)
    {
        var code = new StringBuilder(source.Length);
        var i = 0;
        ReadCode(source, ref i, code, insideHole: false);
        return code.ToString();
    }

    private static (Layer Layer, int Tier)? Resolve(string ns)
    {
        for (var tier = 0; tier < Tiers.Length; tier++)
        {
            foreach (var layer in Tiers[tier])
            {
                if (layer.Namespaces.Any(n => n != "Latchkey" && (ns == n || ns.StartsWith(n + ".", StringComparison.Ordinal))))
                {
                    return (layer, tier);
                }
            }
        }

        return null;
    }

    /// <summary>Copies code up to the end (or, in an interpolation hole, up to its closing brace).</summary>
    private static void ReadCode(string s, ref int i, StringBuilder code, bool insideHole)
    {
        var depth = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (c == '/' && At(s, i + 1, '/'))
            {
                var end = s.IndexOf('\n', i);
                end = end < 0 ? s.Length : end;
                AppendCrefs(s[i..end], code);
                i = end;
            }
            else if (c == '/' && At(s, i + 1, '*'))
            {
                var end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                end = end < 0 ? s.Length : end + 2;
                var comment = s[i..end];
                AppendCrefs(comment, code);
                code.Append('\n', comment.Count(ch => ch == '\n'));
                i = end;
            }
            else if (c == '\'')
            {
                ReadCharLiteral(s, ref i, code);
            }
            else if (c is '"' or '$' or '@' && StringStart(s, i) is { } start)
            {
                ReadString(s, ref i, code, start);
            }
            else if (insideHole && c == '{')
            {
                depth++;
                code.Append(c);
                i++;
            }
            else if (insideHole && c == '}')
            {
                if (depth == 0)
                {
                    return; // the hole's closing brace: the string reader takes it
                }

                depth--;
                code.Append(c);
                i++;
            }
            else
            {
                code.Append(c);
                i++;
            }
        }
    }

    /// <summary>How a string literal starts at <paramref name="i"/>: its <c>$</c> count, whether verbatim, and its
    /// opening quote count (3 or more for a raw string); null when no string starts there.</summary>
    private static (int Dollars, bool Verbatim, int Quotes)? StringStart(string s, int i)
    {
        if (i > 0 && (char.IsLetterOrDigit(s[i - 1]) || s[i - 1] == '_') && s[i] != '"')
        {
            return null;
        }

        var j = i;
        var dollars = 0;
        var verbatim = false;
        while (j < s.Length && (s[j] == '$' || s[j] == '@'))
        {
            dollars += s[j] == '$' ? 1 : 0;
            verbatim |= s[j] == '@';
            j++;
        }

        if (!At(s, j, '"'))
        {
            return null;
        }

        var quotes = 0;
        while (At(s, j + quotes, '"'))
        {
            quotes++;
        }

        // "" is an empty string, not a raw one; """ or more opens a raw string.
        return (dollars, verbatim, quotes >= 3 ? quotes : 1);
    }

    private static void ReadString(string s, ref int i, StringBuilder code, (int Dollars, bool Verbatim, int Quotes) start)
    {
        while (s[i] != '"')
        {
            code.Append(s[i++]);
        }

        code.Append('"', start.Quotes);
        i += start.Quotes;
        var raw = start.Quotes >= 3;
        var holeBraces = Math.Max(start.Dollars, 1);
        while (i < s.Length)
        {
            var c = s[i];
            if (raw && c == '"' && Closes(s, i, start.Quotes))
            {
                code.Append('"', start.Quotes);
                i += start.Quotes;
                return;
            }

            if (!raw && c == '"')
            {
                if (start.Verbatim && At(s, i + 1, '"'))
                {
                    i += 2;
                    continue;
                }

                code.Append(c);
                i++;
                return;
            }

            if (!raw && !start.Verbatim && c == '\\')
            {
                i += 2;
                continue;
            }

            if (start.Dollars > 0 && c == '{')
            {
                var run = 0;
                while (At(s, i + run, '{'))
                {
                    run++;
                }

                if (!raw && run >= 2)
                {
                    i += 2; // {{ is a literal brace
                    continue;
                }

                if (run >= holeBraces)
                {
                    code.Append(' ');
                    i += run;
                    ReadCode(s, ref i, code, insideHole: true);
                    i = Math.Min(i + 1, s.Length); // the hole's closing brace
                    code.Append(' ');
                    continue;
                }
            }

            if (c == '\n')
            {
                code.Append(c); // literal text is left out; its line breaks stay
            }

            i++;
        }
    }

    private static void ReadCharLiteral(string s, ref int i, StringBuilder code)
    {
        code.Append(s[i++]);
        while (i < s.Length && s[i] != '\'' && s[i] != '\n')
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                code.Append(s[i++]);
            }

            code.Append(s[i++]);
        }

        if (i < s.Length && s[i] == '\'')
        {
            code.Append(s[i++]);
        }
    }

    private static void AppendCrefs(string comment, StringBuilder code)
    {
        foreach (Match m in Cref().Matches(comment))
        {
            code.Append(' ').Append(m.Groups[1].Value).Append(' ');
        }
    }

    private static bool At(string s, int i, char c) => i < s.Length && s[i] == c;

    /// <summary>Whether <paramref name="quotes"/> quotes start at <paramref name="i"/> (a raw string's end).</summary>
    private static bool Closes(string s, int i, int quotes)
    {
        for (var k = 0; k < quotes; k++)
        {
            if (!At(s, i + k, '"'))
            {
                return false;
            }
        }

        return true;
    }

    [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(?:global::)?(Latchkey(?:\.\w+)*)\s*;", RegexOptions.CultureInvariant)]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)\s*;", RegexOptions.CultureInvariant | RegexOptions.Multiline)]
    private static partial Regex DeclaredNamespace();

    [GeneratedRegex(@"(?<![\w.])(?:global::)?(Latchkey\.\w+)(?=\.)", RegexOptions.CultureInvariant)]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"cref=""([^""]*)""", RegexOptions.CultureInvariant)]
    private static partial Regex Cref();
}
