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

    /// <summary>Whether the string carries a secret: a password, or the password of a client certificate's key.</summary>
    public bool HasPassword => !string.IsNullOrEmpty(Builder.Password) || !string.IsNullOrEmpty(Builder.SslPassword);

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
        var builder = UrlScheme().IsMatch(spec) ? FromUrl(spec) : FromKeywords(spec);
        if (string.IsNullOrEmpty(builder.Host))
        {
            throw Invalid(spec, "it names no host (give one, or a Unix socket folder with ?host=/run/postgresql)");
        }

        return new PostgresLocation(builder);
    }

    /// <summary>
    /// Replaces any password in a store specification with <c>***</c>, so the rest can be shown in a message: in a
    /// URL, everything between the user name's <c>:</c> and the last <c>@</c> (the same split <see cref="Parse"/>
    /// makes, so a password holding <c>/ ? # @</c> unencoded is masked whole) and everything from a
    /// <c>password=</c> or <c>sslpassword=</c> query parameter (however its name is spelled or encoded) to the end; in a keyword string,
    /// the value of <c>Password</c>, <c>Pwd</c>, <c>Psw</c> or <c>SSL Password</c> (a client certificate key's), quoted or not. When in doubt it masks more.
    /// </summary>
    public static string Mask(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (UrlScheme().Match(spec) is not { Success: true } scheme)
        {
            return KeywordPassword().Replace(spec, "$1***");
        }

        // Two places can hold a password, and an unencoded one can make either look like the other, so both are
        // found on the original text and the union of what they cover is masked: the user info's password (from
        // its ':' to the last '@'), and a password parameter (from its '=' to the end), looked for in the query
        // that starts at the first '?' and in the one after the last '@'.
        var start = scheme.Length;
        int? userInfoFrom = null;
        var at = spec.LastIndexOf('@');
        if (at >= start && spec.IndexOf(':', start, at - start) is var colon and >= 0)
        {
            userInfoFrom = colon + 1;
        }

        int? parameterFrom = null;
        foreach (var questionMark in new[] { spec.IndexOf('?', start), at >= start ? spec.IndexOf('?', at) : -1 })
        {
            if (questionMark >= 0 && PasswordParameterValue(spec, questionMark) is { } from && (parameterFrom is null || from < parameterFrom))
            {
                parameterFrom = from;
            }
        }

        if (parameterFrom is { } p && (userInfoFrom is not { } u || p <= at))
        {
            return string.Concat(spec.AsSpan(0, Math.Min(p, userInfoFrom ?? p)), "***");
        }

        var masked = userInfoFrom is { } f ? string.Concat(spec.AsSpan(0, f), "***", spec.AsSpan(at)) : spec;
        return parameterFrom is { } q ? string.Concat(masked.AsSpan(0, q - (spec.Length - masked.Length)), "***") : masked;
    }

    /// <summary>Where the value of the first <c>password</c> parameter after <paramref name="questionMark"/> starts, or null.</summary>
    private static int? PasswordParameterValue(string spec, int questionMark)
    {
        var pairStart = questionMark + 1;
        while (pairStart <= spec.Length)
        {
            var pairEnd = spec.IndexOf('&', pairStart);
            var pair = spec.AsSpan(pairStart, (pairEnd < 0 ? spec.Length : pairEnd) - pairStart);
            var equals = pair.IndexOf('=');
            if (equals >= 0 && Unescape(pair[..equals].ToString()).Replace(" ", string.Empty, StringComparison.Ordinal).Replace("_", string.Empty, StringComparison.Ordinal)
                    is var name && (name.Equals("password", StringComparison.OrdinalIgnoreCase) || name.Equals("sslpassword", StringComparison.OrdinalIgnoreCase)))
            {
                return pairStart + equals + 1;
            }

            if (pairEnd < 0)
            {
                return null;
            }

            pairStart = pairEnd + 1;
        }

        return null;
    }

    /// <summary>
    /// A warning when the database is reached over a network without a verified TLS connection
    /// (<c>sslmode=verify-full</c> or <c>verify-ca</c>), or null: loopback addresses and Unix sockets need none.
    /// </summary>
    /// <remarks>
    /// Without verification, whoever sits on the network path can pose as the database: read every record's metadata
    /// and client keys' fingerprints, and change rows. Row seals make changed rows fail (tampered), but cannot stop a
    /// replay of an earlier genuine row or a denial of service.
    /// </remarks>
    public string? TransportWarning()
    {
        if (Builder.SslMode is SslMode.VerifyFull or SslMode.VerifyCA)
        {
            return null;
        }

        var remote = (Builder.Host ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(HostOnly).Where(h => !IsLocal(h)).ToList();
        if (remote.Count == 0)
        {
            return null;
        }

        return $"The store {this} is reached over the network ({string.Join(", ", remote)}) with sslmode={Builder.SslMode switch { SslMode.Disable => "disable", SslMode.Allow => "allow", SslMode.Require => "require", _ => "prefer" }}, not verify-full or verify-ca: " +
            "whoever sits on the network path can pose as the database, read every record's metadata and change rows (changed rows are refused as tampered, but earlier genuine rows can be replayed and the store withheld). " +
            "Add sslmode=verify-full to the URL (with sslrootcert=PATH when the server's certificate authority is not in the system's store).";
    }

    private static string HostOnly(string host)
    {
        if (host.StartsWith('['))
        {
            var close = host.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? host[1..close] : host;
        }

        var colon = host.LastIndexOf(':');
        return colon > 0 && host.IndexOf(':', StringComparison.Ordinal) == colon ? host[..colon] : host;
    }

    private static bool IsLocal(string host) =>
        host.StartsWith('/') || host.StartsWith('@') || host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (System.Net.IPAddress.TryParse(host, out var address) && System.Net.IPAddress.IsLoopback(address));

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

        // The user info ends at the last '@', so a password may hold any character, even unencoded / ? # @ (an
        // '@' anywhere else must then be written %40). Nothing after that '@' can be part of the password, so the
        // messages below may quote it.
        var rest = spec[(schemeEnd + 3)..];
        var at = rest.LastIndexOf('@');
        var userInfo = at >= 0 ? rest[..at] : null;
        rest = at >= 0 ? rest[(at + 1)..] : rest;
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
        var hostPort = pathStart >= 0 ? rest[..pathStart] : rest;

        var builder = new NpgsqlConnectionStringBuilder();
        if (userInfo is not null)
        {
            var colon = userInfo.IndexOf(':', StringComparison.Ordinal);
            if ((colon >= 0 ? userInfo[..colon] : userInfo).AsSpan().IndexOfAny('/', '?', '#') >= 0)
            {
                // The last '@' was not the end of a user name: one stands in the database name or a parameter.
                throw Invalid(spec, "an '@' after the host (in the database name or a parameter) must be written %40");
            }

            try
            {
                builder.Username = Unescape(colon >= 0 ? userInfo[..colon] : userInfo);
                if (colon >= 0)
                {
                    builder.Password = Unescape(userInfo[(colon + 1)..]);
                }
            }
            catch (ArgumentException)
            {
                throw Invalid(spec, "its user name or password holds a character a connection string cannot carry (NUL)");
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

        // A password given as a parameter may hold a raw '&' (then split into more "parameters"), so nothing after
        // one is quoted in a message.
        var afterPassword = false;
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Unescape(equals >= 0 ? pair[..equals] : pair);
            var value = equals >= 0 ? Unescape(pair[(equals + 1)..]) : string.Empty;
            if (!UrlParameters.TryGetValue(name, out var keyword))
            {
                throw Invalid(spec, afterPassword
                    ? "a parameter after its password is not supported (if the password holds '&' or '#', write them %26 and %23, or leave the password out of the URL)"
                    : $"the parameter '{name}' is not supported (supported: {string.Join(", ", UrlParameters.Keys)})");
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
                    _ => throw Invalid(spec, afterPassword
                        ? "its sslmode is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        : $"sslmode '{value}' is not one of disable, allow, prefer, require, verify-ca, verify-full"),
                };
            }

            try
            {
                builder[keyword] = value;
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException)
            {
                throw Invalid(spec, name == "password" ? "its password parameter is malformed" : afterPassword ? "a parameter after its password is not valid" : $"the value of '{name}' is not valid");
            }

            afterPassword |= name == "password";
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

    [GeneratedRegex(@"^\s*[A-Za-z][A-Za-z0-9+.-]*://")]
    private static partial Regex UrlScheme();

    /// <summary>
    /// A password keyword and its value: quoted (a doubled quote stands for one), or unquoted up to the next
    /// <c>;</c> that starts another <c>KEY=</c>, or to the end (so a raw <c>;</c> in it is masked too).
    /// </summary>
    [GeneratedRegex(@"((?:^|;)\s*(?:(?:ssl[\s_]*)?pass\s*word|pwd|psw)\s*=[ \t]*)(?:""(?:[^""]|"""")*(?:""|\z)|'(?:[^']|'')*(?:'|\z)|.*?(?=;\s*[A-Za-z][A-Za-z ]*=|\z))", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
    private static partial Regex KeywordPassword();

    [GeneratedRegex(@"^\s*[A-Za-z][A-Za-z ]*=", RegexOptions.None)]
    private static partial Regex KeywordString();
}
