using System.Globalization;
using System.Text;
using System.Xml.Linq;
using Latchkey.Diagnostics;

namespace Latchkey.Local;

/// <summary>Which service manager keeps the gateway up on this machine.</summary>
internal enum ServicePlatform
{
    /// <summary>Linux: a systemd user unit.</summary>
    Systemd,

    /// <summary>macOS: a launchd agent in the user's login session.</summary>
    Launchd,
}

/// <summary>
/// What the service runs: <c>BINARY serve</c> with the home folder (and the store, key file and listen address
/// when they were chosen by the environment at install time), rendered as a systemd user unit or a launchd agent.
/// Pure text: writing and starting it is <see cref="ServiceManager"/>'s job.
/// </summary>
/// <param name="Binary">The latchkey executable, an absolute path.</param>
/// <param name="Home">The home folder, an absolute path.</param>
/// <param name="Environment">More variables for the gateway (<c>LATCHKEY_STORE</c>, …), in order.</param>
internal sealed record ServiceDefinition(string Binary, string Home, IReadOnlyList<KeyValuePair<string, string>> Environment)
{
    /// <summary>The unit's name (<c>systemctl --user status latchkey</c>).</summary>
    public const string SystemdUnitName = "latchkey.service";

    /// <summary>The launchd agent's label (<c>launchctl print gui/UID/latchkey.gateway</c>).</summary>
    public const string LaunchdLabel = "latchkey.gateway";

    /// <summary>The launchd agent's log, in the home folder (0700): the gateway's log never holds a secret, but it names credentials.</summary>
    public string LaunchdLogPath => Path.Combine(Home, "service.log");

    /// <summary>The variables the gateway gets: <c>LATCHKEY_HOME</c> first, then <see cref="Environment"/>.</summary>
    public IEnumerable<KeyValuePair<string, string>> AllEnvironment => [new("LATCHKEY_HOME", Home), .. Environment];

    /// <summary>
    /// The systemd user unit. Hardening: the options of docs/team.md that a user manager applies without mount
    /// namespaces (those need unprivileged user namespaces, which many kernels refuse, and then the unit would not
    /// start at all), plus the seccomp-based ones a user unit gets with <c>NoNewPrivileges</c>.
    /// </summary>
    public string RenderSystemdUnit()
    {
        CheckPaths();
        var unit = new StringBuilder();
        unit.Append("# Written by 'latchkey service install'; 'latchkey service uninstall' removes it.\n");
        unit.Append("[Unit]\n");
        unit.Append("Description=Latchkey gateway (credentials for AI coding agents)\n");
        unit.Append("\n[Service]\n");
        unit.Append("Type=exec\n");
        foreach (var (name, value) in AllEnvironment)
        {
            unit.Append("Environment=").Append(SystemdQuote($"{name}={value}")).Append('\n');
        }

        unit.Append("ExecStart=").Append(SystemdQuote(Binary)).Append(" serve\n");
        unit.Append("Restart=on-failure\n");
        unit.Append("RestartSec=2\n");
        unit.Append("# SIGTERM is a clean shutdown: requests in flight finish, the audit queue is written (up to 10 s).\n");
        unit.Append("KillSignal=SIGTERM\n");
        unit.Append("TimeoutStopSec=30\n");
        unit.Append("SyslogIdentifier=latchkey\n");
        unit.Append("UMask=0077\n");
        unit.Append("NoNewPrivileges=yes\n");
        unit.Append("LockPersonality=yes\n");
        unit.Append("RestrictRealtime=yes\n");
        unit.Append("RestrictSUIDSGID=yes\n");
        unit.Append("RestrictNamespaces=yes\n");
        unit.Append("SystemCallArchitectures=native\n");
        unit.Append("# Not here: ProtectSystem, ProtectHome, PrivateTmp and ReadWritePaths need a mount namespace, which a user\n");
        unit.Append("# manager gets only where unprivileged user namespaces are allowed (the unit would fail to start elsewhere),\n");
        unit.Append("# and ProtectHome would hide the home folder. MemoryDenyWriteExecute would stop .NET's JIT.\n");
        unit.Append("\n[Install]\n");
        unit.Append("WantedBy=default.target\n");
        return unit.ToString();
    }

    /// <summary>The launchd agent: runs at login, restarted when it stops with a failure, logs into the home folder.</summary>
    public string RenderLaunchdPlist()
    {
        CheckPaths();
        var environment = new XElement("dict");
        foreach (var (name, value) in AllEnvironment)
        {
            environment.Add(new XElement("key", name), new XElement("string", value));
        }

        var plist = new XElement("plist", new XAttribute("version", "1.0"),
            new XElement("dict",
                new XElement("key", "Label"), new XElement("string", LaunchdLabel),
                new XElement("key", "ProgramArguments"), new XElement("array", new XElement("string", Binary), new XElement("string", "serve")),
                new XElement("key", "EnvironmentVariables"), environment,
                new XElement("key", "RunAtLoad"), new XElement("true"),
                new XElement("key", "KeepAlive"), new XElement("dict", new XElement("key", "SuccessfulExit"), new XElement("false")),
                new XElement("key", "ThrottleInterval"), new XElement("integer", "2"),
                new XElement("key", "ExitTimeOut"), new XElement("integer", "30"),
                new XElement("key", "ProcessType"), new XElement("string", "Background"),
                new XElement("key", "Umask"), new XElement("integer", Convert.ToInt32("077", 8).ToString(CultureInfo.InvariantCulture)),
                new XElement("key", "StandardOutPath"), new XElement("string", LaunchdLogPath),
                new XElement("key", "StandardErrorPath"), new XElement("string", LaunchdLogPath)));
        var document = new XDocument(new XDeclaration("1.0", "UTF-8", null),
            new XDocumentType("plist", "-//Apple//DTD PLIST 1.0//EN", "http://www.apple.com/DTDs/PropertyList-1.0.dtd", null),
            plist);
        using var writer = new Utf8StringWriter();
        document.Save(writer);
        return writer.ToString().Replace("\r\n", "\n", StringComparison.Ordinal) + "\n";
    }

    /// <summary>The binary a unit file runs (its <c>ExecStart</c>'s first word), or null; for <c>service status</c>.</summary>
    public static string? ReadSystemdBinary(string unitText)
    {
        foreach (var line in unitText.Split('\n'))
        {
            if (line.StartsWith("ExecStart=", StringComparison.Ordinal))
            {
                var rest = line["ExecStart=".Length..];
                return SystemdUnquoteFirst(rest);
            }
        }

        return null;
    }

    /// <summary>The binary a launchd plist runs (the first of <c>ProgramArguments</c>), or null.</summary>
    public static string? ReadLaunchdBinary(string plistText)
    {
        try
        {
            var dict = XDocument.Parse(plistText).Root?.Element("dict");
            var key = dict?.Elements("key").FirstOrDefault(k => k.Value == "ProgramArguments");
            return (key?.ElementsAfterSelf().FirstOrDefault() as XElement)?.Element("string")?.Value;
        }
        catch (System.Xml.XmlException)
        {
            return null;
        }
    }

    private void CheckPaths()
    {
        if (Binary.Any(c => c is '"' or '\'' or '\\'))
        {
            throw new ActionableException($"systemd cannot start an executable whose path holds a quote or a backslash: {Binary}.",
                "Link it from a plain path and name that: latchkey service install --binary ~/.local/bin/latchkey");
        }

        foreach (var (what, path) in new[] { ("executable", Binary), ("home folder", Home) }.Concat(Environment.Select(e => (e.Key, e.Value))))
        {
            if (path.Any(c => char.IsControl(c)))
            {
                throw new ActionableException($"The {what} '{path.ReplaceLineEndings(" ")}' holds a control character, which a service file cannot carry.", "Use a path without line breaks or control characters.");
            }
        }
    }

    /// <summary>
    /// One word for a unit file: '%' becomes '%%' (specifiers); a word with a space, quote, backslash or ';' is put in
    /// double quotes with C-style escapes. An <c>ExecStart</c> executable is never variable-expanded, so its '$'
    /// stays (systemd refuses one with a quote or backslash: <see cref="CheckPaths"/>).
    /// </summary>
    internal static string SystemdQuote(string word)
    {
        var text = word.Replace("%", "%%", StringComparison.Ordinal);

        if (!text.Any(c => c is ' ' or '\t' or '"' or '\'' or '\\' or ';'))
        {
            return text;
        }

        return "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
    }

    private static string SystemdUnquoteFirst(string rest)
    {
        rest = rest.TrimStart();
        string word;
        if (rest.StartsWith('"'))
        {
            var builder = new StringBuilder();
            for (var i = 1; i < rest.Length && rest[i] != '"'; i++)
            {
                if (rest[i] == '\\' && i + 1 < rest.Length)
                {
                    i++;
                }

                builder.Append(rest[i]);
            }

            word = builder.ToString();
        }
        else
        {
            var space = rest.IndexOfAny([' ', '\t']);
            word = space < 0 ? rest : rest[..space];
        }

        return word.Replace("%%", "%", StringComparison.Ordinal);
    }

    private sealed class Utf8StringWriter : StringWriter
    {
        public Utf8StringWriter()
            : base(CultureInfo.InvariantCulture)
        {
        }

        public override Encoding Encoding => new UTF8Encoding(false);
    }
}
