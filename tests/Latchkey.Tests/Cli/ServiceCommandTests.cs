using System.Diagnostics;
using System.Xml;
using System.Xml.Linq;
using Latchkey.Local;

namespace Latchkey.Tests.Cli;

/// <summary>
/// <c>latchkey service install|uninstall|status</c>. The unit is checked by systemd's own checker
/// (<c>systemd-analyze verify --user</c>, which fails on nothing but prints every key it could not use, so the test
/// wants it silent), the plist by an XML reader that takes it apart as launchd would. <c>systemctl</c> is a fake on
/// <c>PATH</c> that records what it was asked: nothing here touches the machine's own service manager.
/// </summary>
public sealed class ServiceCommandTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private string Root => _home.Root;

    [Fact]
    public async Task Print_SystemdUnit_PassesSystemdAnalyzeVerifyWithoutAWord()
    {
        var unit = await PrintUnitAsync(Processes.LatchkeyExe);
        Assert.Contains($"ExecStart={Processes.LatchkeyExe} serve\n", unit, StringComparison.Ordinal);
        Assert.Contains($"Environment=LATCHKEY_HOME={_home.Path}\n", unit, StringComparison.Ordinal);
        foreach (var hardening in new[] { "NoNewPrivileges=yes", "UMask=0077", "KillSignal=SIGTERM", "Restart=on-failure", "WantedBy=default.target" })
        {
            Assert.Contains(hardening + "\n", unit, StringComparison.Ordinal);
        }

        await VerifyAsync(unit);
    }

    [Fact]
    public async Task SystemdUnit_PathsWithSpacesPercentDollarAndQuotes_AreQuotedSoSystemdRunsTheRightFile()
    {
        var folder = Path.Combine(Root, "my tools %h $HOME;x");
        Directory.CreateDirectory(folder);
        var binary = Path.Combine(folder, "latchkey");
        File.CreateSymbolicLink(binary, Processes.LatchkeyExe);
        var definition = new ServiceDefinition(binary, Path.Combine(Root, "home %i $USER"), [new("LATCHKEY_LISTEN", "127.0.0.1:7400")]);
        var unit = definition.RenderSystemdUnit();

        Assert.Equal(binary, ServiceDefinition.ReadSystemdBinary(unit));
        await VerifyAsync(unit); // systemd checks that the ExecStart it read is an executable file: the quoting held
        Assert.Contains("Environment=\"LATCHKEY_HOME=" + Root + "/home %%i $USER\"\n", unit, StringComparison.Ordinal);
    }

    [Fact]
    public void SystemdUnit_AnExecutablePathWithAQuote_IsRefusedWithTheWayOut()
    {
        var problem = Assert.Throws<Latchkey.Diagnostics.ActionableException>(() => new ServiceDefinition("/opt/it's/latchkey", "/home/me/.local/share/latchkey", []).RenderSystemdUnit());
        Assert.Contains("--binary", problem.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void LaunchdPlist_ParsesAsAPlistWithTheAgentsKeys()
    {
        var definition = new ServiceDefinition("/Users/me/.dotnet/tools/latchkey", "/Users/me/.local/share/latchkey", [new("LATCHKEY_STORE", "postgresql://me@db/latchkey")]);
        var text = definition.RenderLaunchdPlist();

        // As launchd's reader does: the DTD named but never fetched.
        using var reader = XmlReader.Create(new StringReader(text), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null });
        var document = XDocument.Load(reader);
        Assert.Equal("plist", document.Root!.Name.LocalName);
        Assert.Equal("1.0", (string?)document.Root.Attribute("version"));
        var agent = ReadDict(document.Root.Elements().Single());

        Assert.Equal(ServiceDefinition.LaunchdLabel, agent["Label"].Value);
        Assert.Equal(["/Users/me/.dotnet/tools/latchkey", "serve"], agent["ProgramArguments"].Elements("string").Select(e => e.Value));
        var environment = ReadDict(agent["EnvironmentVariables"]);
        Assert.Equal("/Users/me/.local/share/latchkey", environment["LATCHKEY_HOME"].Value);
        Assert.Equal("postgresql://me@db/latchkey", environment["LATCHKEY_STORE"].Value);
        Assert.Equal("true", agent["RunAtLoad"].Name.LocalName);
        Assert.Equal("false", ReadDict(agent["KeepAlive"])["SuccessfulExit"].Name.LocalName);
        Assert.Equal("63", agent["Umask"].Value); // 0077
        Assert.Equal("/Users/me/.local/share/latchkey/service.log", agent["StandardOutPath"].Value);
        Assert.Equal("/Users/me/.local/share/latchkey/service.log", agent["StandardErrorPath"].Value);
        Assert.Equal("/Users/me/.dotnet/tools/latchkey", ServiceDefinition.ReadLaunchdBinary(text));
    }

    [Fact]
    public async Task Print_StoreOptionRelativeKeyFileAndKeychainSwitch_CarriedIntoTheUnitAsTheGatewayNeedsThem()
    {
        var working = Path.Combine(Root, "work");
        Directory.CreateDirectory(working);
        var info = Processes.StartInfo(Processes.LatchkeyExe, _home.Path,
            ["service", "install", "--print", "--binary", Processes.LatchkeyExe, "--store", "postgresql://team@db.example:5432/latchkey"]);
        info.WorkingDirectory = working;
        info.Environment["LATCHKEY_KEY_FILE"] = "team.key";
        info.Environment["LATCHKEY_KEYCHAIN"] = "off";
        info.Environment.Remove("LATCHKEY_STORE");

        var result = await Processes.Run(info, null);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("LATCHKEY_STORE=postgresql://team@db.example:5432/latchkey", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"LATCHKEY_KEY_FILE={Path.Combine(working, "team.key")}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("LATCHKEY_KEYCHAIN=off", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Print_StoreWithTheClientCertificatesPassword_RefusedAndNothingPrinted()
    {
        var result = await Processes.Latchkey(_home.Path, null, new Dictionary<string, string> { ["LATCHKEY_STORE"] = "Host=db.example;Username=team;Database=latchkey;SSL Password=s3cret-cert-pass" },
            "service", "install", "--print", "--binary", Processes.LatchkeyExe);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("password", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-cert-pass", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Install_BinaryInAFolderOtherUsersCanWrite_RefusedNamingTheFolder()
    {
        var shared = Path.Combine(Root, "shared");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, (UnixFileMode)0b111_111_111); // 0777, no sticky bit: anyone may replace what is inside
        var binary = Path.Combine(shared, "latchkey");
        File.Copy(Processes.LatchkeyExe, binary);

        var result = await Cli(Fake("exit 0"), "service", "install", "--binary", binary);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{shared} may be written by other users", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("chmod go-w", result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(UnitPath), "nothing is written");
    }

    [Fact]
    public async Task Install_FromABuildFolder_IsRefusedNamingTheFolderAndTheWayOut()
    {
        var result = await Cli(Fake("exit 0"), "service", "install");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("build output folder", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("--binary PATH", result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(UnitPath), "nothing is written");
    }

    [Fact]
    public async Task Install_WritesThePrivateUnitUnderXdgConfigHome_ReloadsAndEnablesIt_UninstallUndoes()
    {
        var calls = Path.Combine(Root, "calls");
        var fake = Fake($"echo \"$*\" >> '{calls}'");

        var installed = await Cli(fake, "service", "install", "--binary", Processes.LatchkeyExe);
        Assert.True(installed.ExitCode == 0, installed.ToString());
        Assert.True(File.Exists(UnitPath), installed.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(UnitPath));
        await VerifyAsync(await File.ReadAllTextAsync(UnitPath));
        Assert.Equal(["--user daemon-reload", "--user enable --now latchkey.service"], Lines(calls));
        Assert.Contains("journalctl --user -u latchkey", installed.Stdout, StringComparison.Ordinal);

        File.Delete(calls);
        var again = await Cli(fake, "service", "install", "--binary", Processes.LatchkeyExe);
        Assert.Contains("Unchanged", again.Stdout, StringComparison.Ordinal);

        File.Delete(calls);
        var removed = await Cli(fake, "service", "uninstall");
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.False(File.Exists(UnitPath));
        Assert.Equal(["--user disable --now latchkey.service", "--user daemon-reload"], Lines(calls));
    }

    [Fact]
    public async Task Install_WithoutAUserSessionBus_WritesTheUnitAndSaysWhatToRun()
    {
        var fake = Fake("echo 'Failed to connect to bus: No medium found' >&2; exit 1");

        var result = await Cli(fake, "service", "install", "--binary", Processes.LatchkeyExe);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.True(File.Exists(UnitPath));
        Assert.Contains("Failed to connect to bus", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("systemctl --user daemon-reload && systemctl --user enable --now latchkey.service", result.Stdout, StringComparison.Ordinal);

        // Enabled by hand meanwhile; uninstall, still without the bus, takes back the link 'enable' made.
        var wants = Path.Combine(Path.GetDirectoryName(UnitPath)!, "default.target.wants");
        Directory.CreateDirectory(wants);
        File.CreateSymbolicLink(Path.Combine(wants, "latchkey.service"), UnitPath);
        var removed = await Cli(fake, "service", "uninstall");
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.False(File.Exists(UnitPath));
        Assert.Null(new FileInfo(Path.Combine(wants, "latchkey.service")).LinkTarget);
        Assert.Contains("systemctl --user stop latchkey.service && systemctl --user daemon-reload", removed.Stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// The gateway the unit starts (its <c>ExecStart</c> with its <c>Environment</c>, no terminal, no <c>--home</c>)
    /// is the one <c>latchkey env</c>/<c>run</c> find through <c>gateway.json</c> and the gateway's proof: they start
    /// none of their own. <c>status</c> says it is the service's and where it logs.
    /// </summary>
    [Fact]
    public async Task TheUnitsGateway_IsTheOneRunAndEnvUse_AndStatusSaysSo()
    {
        var added = await Processes.Latchkey(_home.Path, "sk-test-" + Guid.NewGuid().ToString("N") + "\n", "add", "api", "--upstream", "http://127.0.0.1:9", "--header", "x-api-key", "--format", "{secret}");
        Assert.True(added.ExitCode == 0, added.ToString());
        var unit = await PrintUnitAsync(Processes.LatchkeyExe, new Dictionary<string, string> { ["LATCHKEY_LISTEN"] = "127.0.0.1:0" });

        // As systemd would: ExecStart, with exactly the unit's Environment= lines.
        var lines = unit.Split('\n');
        var exec = lines.Single(l => l.StartsWith("ExecStart=", StringComparison.Ordinal))["ExecStart=".Length..].Split(' ');
        var start = new ProcessStartInfo(exec[0]) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(exec[1]);
        start.Environment.Remove("LATCHKEY_HOME");
        foreach (var line in lines.Where(l => l.StartsWith("Environment=", StringComparison.Ordinal)))
        {
            var pair = line["Environment=".Length..].Split('=', 2);
            start.Environment[pair[0]] = pair[1];
        }

        using var service = Process.Start(start)!;
        service.StandardInput.Close();
        try
        {
            await RealTime.UntilAsync(() => File.Exists(Path.Combine(_home.Path, "gateway.json")), TimeSpan.FromSeconds(30));

            var env = await Processes.Latchkey(_home.Path, null, "env", "--credential", "api", "--expires", "1h");
            Assert.True(env.ExitCode == 0, env.ToString());
            var json = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_home.Path, "gateway.json")))!;
            Assert.Equal(service.Id, (int)json["pid"]!);
            Assert.Contains($"export LATCHKEY_URL='{(string)json["url"]!}'", env.Stdout, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(_home.Path, "gateway.log")), "env started a gateway of its own");

            var fake = Fake($"[ \"$2\" = show ] && printf 'MainPID={service.Id}\\nActiveState=active\\nSubState=running\\n'; exit 0");
            Assert.Equal(0, (await Cli(fake, "service", "install", "--binary", Processes.LatchkeyExe)).ExitCode);
            var status = await Cli(fake, "service", "status");
            Assert.True(status.ExitCode == 0, status.ToString());
            Assert.Contains("state: active (running), pid " + service.Id, status.Stdout, StringComparison.Ordinal);
            Assert.Contains($"{(string)json["url"]!} (pid {service.Id}), the service's", status.Stdout, StringComparison.Ordinal);
            Assert.Contains("logs: journalctl --user -u latchkey", status.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            service.Kill();
            await service.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Status_NotInstalled_SaysSoAndExits1()
    {
        var status = await Cli(Fake("exit 0"), "service", "status");

        Assert.Equal(1, status.ExitCode);
        Assert.Contains("service: not installed", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("latchkey service install", status.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/tmp/dotnet-build/latchkey", true)]
    [InlineData("/home/me/src/latchkey/src/Latchkey/bin/Release/net10.0/linux-x64/latchkey", true)]
    [InlineData("/home/me/src/latchkey/.build/artifacts/bin/latchkey/latchkey", true)]
    [InlineData("/home/me/.dotnet/tools/latchkey", false)]
    [InlineData("/usr/local/bin/latchkey", false)]
    [InlineData("/home/me/src/latchkey/.build/latchkey/latchkey", false)] // ./latchkey's own published copy, kept up to date in place
    public void BuildFolderOf_TemporaryAndBuildOutputFolders(string path, bool refused) =>
        Assert.Equal(refused, ServiceManager.BuildFolderOf(path) is not null);

    private string UnitPath => Path.Combine(Root, "config", "systemd", "user", "latchkey.service");

    private static Dictionary<string, XElement> ReadDict(XElement dict)
    {
        Assert.Equal("dict", dict.Name.LocalName);
        var children = dict.Elements().ToList();
        Assert.True(children.Count % 2 == 0, "a dict alternates key and value");
        var result = new Dictionary<string, XElement>(StringComparer.Ordinal);
        for (var i = 0; i < children.Count; i += 2)
        {
            Assert.Equal("key", children[i].Name.LocalName);
            result.Add(children[i].Value, children[i + 1]);
        }

        return result;
    }

    private static string[] Lines(string path) => File.Exists(path) ? File.ReadAllLines(path) : [];

    /// <summary>A folder holding a fake <c>systemctl</c> running <paramref name="body"/>; with /usr/bin and /bin after it for the shell.</summary>
    private string Fake(string body)
    {
        var bin = Path.Combine(Root, "fakebin-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(bin);
        var systemctl = Path.Combine(bin, "systemctl");
        File.WriteAllText(systemctl, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(systemctl, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return bin;
    }

    private Task<Processes.Result> Cli(string fakeBin, params string[] args) => Processes.Latchkey(_home.Path, null, new Dictionary<string, string>
    {
        ["PATH"] = fakeBin, // systemctl is found on PATH only: the fake, never the machine's
        ["XDG_CONFIG_HOME"] = Path.Combine(Root, "config"),
        ["HOME"] = Root,
        ["LATCHKEY_LISTEN"] = "127.0.0.1:0",
    }, args);

    private async Task<string> PrintUnitAsync(string binary, Dictionary<string, string>? environment = null)
    {
        var result = await Processes.Latchkey(_home.Path, null, environment ?? new Dictionary<string, string>(), "service", "install", "--print", "--binary", binary);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout;
    }

    /// <summary>
    /// <c>systemd-analyze verify --user</c> on the unit: it loads it as the user manager would (in a private runtime
    /// folder: no manager needs to run) and checks every key, each command's executable, and the [Install] target.
    /// </summary>
    private async Task VerifyAsync(string unit)
    {
        var folder = Path.Combine(Root, "verify-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        var runtime = Path.Combine(folder, "runtime");
        Directory.CreateDirectory(runtime, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var file = Path.Combine(folder, "latchkey.service");
        await File.WriteAllTextAsync(file, unit);
        var info = new ProcessStartInfo("systemd-analyze") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "verify", "--user", "--man=no", file })
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["XDG_RUNTIME_DIR"] = runtime;
        info.Environment["SYSTEMD_LOG_COLOR"] = "0";
        var result = await Processes.Run(info, null);
        Assert.True(result.ExitCode == 0 && result.All.Trim().Length == 0, $"systemd-analyze verify:\n{result}\nunit:\n{unit}");
    }
}
