using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;

namespace Latchkey.Dashboard;

/// <summary>
/// A piece of HTML that is already safe to write as is. Only <see cref="Html.Of"/> (whose holes are encoded) and
/// <see cref="Html.Join"/> make one, so text from the store can never become markup by mistake.
/// </summary>
internal sealed class HtmlContent
{
    internal HtmlContent(string value) => Value = value;

    public static HtmlContent Empty { get; } = new(string.Empty);

    public string Value { get; }

    public override string ToString() => Value;
}

/// <summary>The dashboard's renderer: interpolated strings whose literal parts are markup and whose holes are
/// HTML-encoded text, unless a hole is itself <see cref="HtmlContent"/>.</summary>
internal static class Html
{
    /// <summary>Builds HTML: <c>Html.Of($"&lt;td&gt;{name}&lt;/td&gt;")</c> encodes <c>name</c>.</summary>
    public static HtmlContent Of(ref HtmlHandler html) => new(html.ToStringAndClear());

    public static HtmlContent Join(IEnumerable<HtmlContent> parts) => new(string.Concat(parts.Select(p => p.Value)));

    public static HtmlContent Join<T>(IEnumerable<T> items, Func<T, HtmlContent> render) => Join(items.Select(render));

    /// <summary>A moment as people read it, in UTC, in a <c>time</c> element.</summary>
    public static HtmlContent Time(DateTimeOffset? at) => at is { } t
        ? Of($"<time datetime=\"{t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}\">{t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC</time>")
        : Of($"<span class=\"muted\">never</span>");
}

/// <summary>The interpolated-string handler behind <see cref="Html.Of"/>.</summary>
[InterpolatedStringHandler]
internal ref struct HtmlHandler
{
    private readonly StringBuilder _builder;

    public HtmlHandler(int literalLength, int formattedCount) => _builder = new StringBuilder(literalLength + (formattedCount * 16));

    public readonly void AppendLiteral(string value) => _builder.Append(value);

    public readonly void AppendFormatted(HtmlContent? value) => _builder.Append(value?.Value);

    public readonly void AppendFormatted(string? value) => _builder.Append(WebUtility.HtmlEncode(value));

    public readonly void AppendFormatted<T>(T value) =>
        _builder.Append(WebUtility.HtmlEncode(value is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : value?.ToString()));

    public readonly string ToStringAndClear()
    {
        var text = _builder.ToString();
        _builder.Clear();
        return text;
    }
}
