using System.Globalization;
using System.Text;
using System.Text.Json;
using Latchkey.Store;

namespace Latchkey.Diagnostics;

/// <summary>
/// What an upstream's failure means and what to do about it: a reason code (docs/gateway.md lists them all), a
/// sentence, the next step, and the upstream's request id. Never holds secret material: upstream messages are
/// cut short and have the credential's secret masked before they are kept.
/// </summary>
internal sealed record UpstreamDiagnosis(string Code, string Message, string? Fix, int Status, string? RequestId, TimeSpan? RetryAfter)
{
    /// <summary>Whether this failure is about the credential (and so belongs in its status), not about load.</summary>
    public bool IsCredentialFailure => Code is "authentication_failed" or "invalid_api_key" or "oauth_not_supported"
        or "credential_restricted" or "missing_scope" or "permission_denied";

    /// <summary>What goes between Latchkey's explanation and the upstream's own words in <see cref="Message"/>.</summary>
    public const string UpstreamSaid = " The upstream said: ";

    /// <summary><see cref="Message"/> without the upstream's quoted words: Latchkey's own explanation.</summary>
    public string Explanation => Message.IndexOf(UpstreamSaid, StringComparison.Ordinal) is var at and >= 0 ? Message[..at] : Message;

    public UpstreamFailure ToFailure(DateTimeOffset at) => new(Code, Message, Fix, Status, RequestId, at);

    /// <summary>
    /// The <c>latchkey-diagnostic</c> header value: <c>CODE; credential="NAME"; request-id="ID"; fix="..."</c>,
    /// ASCII only, with quotes and backslashes escaped as in RFC 9110 quoted strings. <paramref name="first"/> are
    /// parameters of the code itself, written right after it (<c>key_limit_reached; limit="rate"; ...</c>).
    /// </summary>
    public string ToHeaderValue(string credential, IReadOnlyList<(string Name, string Value)>? first = null)
    {
        var sb = new StringBuilder(Code);
        foreach (var (name, value) in first ?? [])
        {
            Append(sb, name, value);
        }

        Append(sb, "credential", credential);
        Append(sb, "status", Status.ToString(CultureInfo.InvariantCulture));
        if (RequestId is not null)
        {
            Append(sb, "request-id", RequestId);
        }

        if (RetryAfter is { } r)
        {
            Append(sb, "retry-after", ((int)Math.Ceiling(r.TotalSeconds)).ToString(CultureInfo.InvariantCulture));
        }

        Append(sb, "message", Message);
        if (Fix is not null)
        {
            Append(sb, "fix", Fix);
        }

        return sb.ToString();

        static void Append(StringBuilder sb, string name, string value)
        {
            sb.Append("; ").Append(name).Append("=\"");
            foreach (var c in value)
            {
                if (c is '"' or '\\')
                {
                    sb.Append('\\').Append(c);
                }
                else if (c is >= ' ' and <= '~')
                {
                    sb.Append(c);
                }
                else
                {
                    sb.Append(c is '\r' or '\n' or '\t' ? ' ' : '?');
                }
            }

            sb.Append('"');
        }
    }
}
