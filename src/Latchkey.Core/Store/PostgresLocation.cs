using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace Latchkey.Store;

/// <summary>
/// Where a PostgreSQL store is: parsed from a <c>postgresql://</c> (or <c>postgres://</c>) URL in libpq's format,
/// or from an Npgsql keyword connection string (<c>Host=...;Database=...</c>). Knows whether a password was given
/// and prints itself without it.
/// </summary>
/// <remarks>
/// Passwords are best left out of the URL altogether: Npgsql reads <c>PGPASSWORD</c> and <c>~/.pgpass</c> (or the
/// <c>passfile</c> parameter) like libpq does.
/// </remarks>
internal sealed partial class PostgresLocation
{
    /// <summary>The URL query parameters understood, with the Npgsql keyword each one sets.</summary>
    private static readonly Dictionary<string, string> UrlParameters = new(StringComparer.Ordinal)
    {
        ["host"] = "Host",
        ["port"] = "Port",
        ["user"] = "Username",
        ["password"] = "Password",
        ["dbname"] = "Database",
        ["sslmode"] = "SSL Mode",
        ["sslrootcert"] = "Root Certificate",
        ["sslcert"] = "SSL Certificate",
        ["sslkey"] = "SSL Key",
        ["passfile"] = "Passfile",
        ["application_name"] = "Application Name",
        ["connect_timeout"] = "Timeout",
        ["target_session_attrs"] = "Target Session Attributes",
        ["options"] = "Options",
    };

    private PostgresLocation(NpgsqlConnectionStringBuilder builder)
    {
        Builder = builder;
    }

    /// <summary>The parsed settings, password included; never print this.</summary>
    public NpgsqlConnectionStringBuilder Builder { get; }

    public bool HasPassword => !string.IsNullOrEmpty(Builder.Password);

    /// <summary>Whether <paramref name="spec"/> names a PostgreSQL store (a URL or a keyword connection string).</summary>
    public static bool Matches(string spec) =>
        spec.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
        || spec.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
        || KeywordString().IsMatch(spec);

    /// <summary>Parses a URL or keyword connection string.</summary>
    /// <exception cref="StoreException">It is not one; the message never repeats a password.</exception>
    public static PostgresLocation Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var builder = spec.Contains("://", StringComparison.Ordinal) ? FromUrl(spec) : FromKeywords(spec);
        if (string.IsNullOrEmpty(builder.Host))
        {
            throw Invalid(spec, "it names no host (give one, or a Unix socket folder with ?host=/run/postgresql)");
        }

        return new PostgresLocation(builder);
    }

    /// <summary>
    /// Replaces any password in a store specification (URL user info, a <c>password=</c> query parameter, or a
    /// <c>Password=</c> keyword) with <c>***</c>, so the rest can be shown in a message.
    /// </summary>
    public static string Mask(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var masked = UrlUserInfoPassword().Replace(spec, "$1***@");
        masked = QueryPassword().Replace(masked, "$1***");
        return KeywordPassword().Replace(masked, "$1***");
    }

    /// <summary>The location as a URL with no password: <c>postgresql://user@host:port/database</c>.</summary>
    public override string ToString()
    {
        var text = new StringBuilder("postgresql://");
        if (!string.IsNullOrEmpty(Builder.Username))
        {
            text.Append(Uri.EscapeDataString(Builder.Username)).Append('@');
        }

        var host = Builder.Host ?? string.Empty;
        var socket = host.StartsWith('/');
        if (!socket)
        {
            text.Append(host);
            if (!host.Contains(',', StringComparison.Ordinal))
            {
                text.Append(':').Append(Builder.Port.ToString(CultureInfo.InvariantCulture));
            }
        }

        text.Append('/').Append(Uri.EscapeDataString(Builder.Database ?? string.Empty));
        if (socket)
        {
            text.Append("?host=").Append(host).Append("&port=").Append(Builder.Port.ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    private static NpgsqlConnectionStringBuilder FromUrl(string spec)
    {
        var schemeEnd = spec.IndexOf("://", StringComparison.Ordinal);
        var scheme = spec[..schemeEnd];
        if (!scheme.Equals("postgresql", StringComparison.OrdinalIgnoreCase) && !scheme.Equals("postgres", StringComparison.OrdinalIgnoreCase))
        {
            throw Invalid(spec, $"the scheme '{scheme}' is not postgresql:// or postgres://");
        }

        var rest = spec[(schemeEnd + 3)..];
        var fragment = rest.IndexOf('#', StringComparison.Ordinal);
        if (fragment >= 0)
        {
            rest = rest[..fragment];
        }

        var queryStart = rest.IndexOf('?', StringComparison.Ordinal);
        var query = queryStart >= 0 ? rest[(queryStart + 1)..] : string.Empty;
        rest = queryStart >= 0 ? rest[..queryStart] : rest;
        var pathStart = rest.IndexOf('/', StringComparison.Ordinal);
        var database = pathStart >= 0 ? Unescape(rest[(pathStart + 1)..]) : string.Empty;
        var authority = pathStart >= 0 ? rest[..pathStart] : rest;
        var at = authority.LastIndexOf('@');
        var userInfo = at >= 0 ? authority[..at] : null;
        var hostPort = at >= 0 ? authority[(at + 1)..] : authority;

        var builder = new NpgsqlConnectionStringBuilder();
        if (userInfo is not null)
        {
            var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Unescape(colon >= 0 ? userInfo[..colon] : userInfo);
            if (colon >= 0)
            {
                builder.Password = Unescape(userInfo[(colon + 1)..]);
            }
        }

        if (hostPort.Length > 0)
        {
            if (hostPort.Contains(',', StringComparison.Ordinal))
            {
                builder.Host = Unescape(hostPort); // several hosts, each with its own port: Npgsql's own syntax
            }
            else
            {
                var (host, port) = SplitHostPort(spec, hostPort);
                builder.Host = host;
                if (port is not null)
                {
                    builder.Port = port.Value;
                }
            }
        }

        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Unescape(equals >= 0 ? pair[..equals] : pair);
            var value = equals >= 0 ? Unescape(pair[(equals + 1)..]) : string.Empty;
            if (!UrlParameters.TryGetValue(name, out var keyword))
            {
                throw Invalid(spec, $"the parameter '{name}' is not supported (supported: {string.Join(", ", UrlParameters.Keys)})");
            }

            if (name == "sslmode")
            {
                value = value switch
                {
                    "disable" => "Disable",
                    "allow" => "Allow",
                    "prefer" => "Prefer",
                    "require" => "Require",
                    "verify-ca" => "VerifyCA",
                    "verify-full" => "VerifyFull",
                    _ => throw Invalid(spec, $"sslmode '{value}' is not one of disable, allow, prefer, require, verify-ca, verify-full"),
                };
            }

            try
            {
                builder[keyword] = value;
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException)
            {
                throw Invalid(spec, name == "password" ? "its password parameter is malformed" : $"the value of '{name}' is not valid");
            }
        }

        return builder;
    }

    private static (string Host, int? Port) SplitHostPort(string spec, string hostPort)
    {
        string host;
        string? portText = null;
        if (hostPort.StartsWith('['))
        {
            var close = hostPort.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw Invalid(spec, "its IPv6 address has no closing ']'");
            }

            host = hostPort[1..close];
            if (close + 1 < hostPort.Length)
            {
                if (hostPort[close + 1] != ':')
                {
                    throw Invalid(spec, "something follows its IPv6 address that is not ':PORT'");
                }

                portText = hostPort[(close + 2)..];
            }
        }
        else
        {
            var colon = hostPort.LastIndexOf(':');
            host = colon >= 0 ? hostPort[..colon] : hostPort;
            portText = colon >= 0 ? hostPort[(colon + 1)..] : null;
        }

        if (portText is null || portText.Length == 0)
        {
            return (Unescape(host), null);
        }

        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw Invalid(spec, $"the port '{portText}' is not a number from 1 to 65535");
        }

        return (Unescape(host), port);
    }

    private static NpgsqlConnectionStringBuilder FromKeywords(string spec)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(spec);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException or KeyNotFoundException)
        {
            throw Invalid(spec, "it is not a valid Npgsql connection string (an unknown keyword or a malformed value)");
        }
    }

    private static string Unescape(string text) => Uri.UnescapeDataString(text);

    private static StoreException Invalid(string spec, string why) => new("store_invalid",
        $"The store '{Mask(spec)}' is not a usable PostgreSQL location: {why}. Expected postgresql://USER@HOST:PORT/DATABASE[?sslmode=verify-full], or an Npgsql connection string like 'Host=HOST;Database=DATABASE;Username=USER'.");

    [GeneratedRegex(@"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*:)[^/?#]*@")]
    private static partial Regex UrlUserInfoPassword();

    [GeneratedRegex(@"([?&]password=)[^&#]*", RegexOptions.IgnoreCase)]
    private static partial Regex QueryPassword();

    [GeneratedRegex(@"((?:^|;)\s*(?:password|pwd)\s*=\s*)(?:""[^""]*""|'[^']*'|[^;]*)", RegexOptions.IgnoreCase)]
    private static partial Regex KeywordPassword();

    [GeneratedRegex(@"^\s*[A-Za-z][A-Za-z ]*=", RegexOptions.None)]
    private static partial Regex KeywordString();
}
