using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// The master key in the OS keychain, against a real <c>gnome-keyring-daemon</c> on a private D-Bus session bus
/// (<see cref="KeychainSession"/>): a new home keeps its key there and nothing in the home folder; records read
/// across processes; <c>key move</c> both ways; a locked keyring is a clear error that creates nothing; no
/// keychain falls back to <c>master.key</c>; a team's <c>LATCHKEY_KEY_FILE</c> never touches the keychain; the item
/// is found however the home is spelled (its account is recorded in the note); processes that disagree about
/// <c>LATCHKEY_KEYCHAIN</c> share one key; a stray item is not adopted beside data sealed under another key; a copy a
/// move leaves behind is reported; no session bus is a clear error. <c>secret-tool</c> (libsecret) checks from outside.
/// </summary>
public sealed class OsKeychainTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Fact]
    public async Task NewHome_KeyIsInTheKeyringAndNowhereInTheHomeFolder_RecordsReadAcrossProcesses()
    {
        using var keyring = KeychainSession.Start();
        await Add(keyring, "anthropic", "sk-ant-keychain-1");

        Assert.False(File.Exists(Path.Combine(_home.Path, "master.key")));
        Assert.True(File.Exists(Path.Combine(_home.Path, "master.key.keychain")));
        var stored = keyring.Lookup(_home.Path);
        Assert.NotNull(stored);
        var key = Convert.FromBase64String(stored);
        Assert.Equal(32, key.Length);
        foreach (var file in Directory.EnumerateFiles(_home.Path, "*", SearchOption.AllDirectories))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            Assert.False(bytes.AsSpan().IndexOf(key) >= 0, $"{file} holds the master key");
            Assert.False(bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(stored)) >= 0, $"{file} holds the master key in base64");
        }

        var token = await Processes.Latchkey(_home.Path, null, keyring.Environment, "token", "anthropic");
        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal("sk-ant-keychain-1", token.Stdout.Trim());

        var where = await Processes.Latchkey(_home.Path, null, keyring.Environment, "key", "where", "--json");
        Assert.Contains("\"place\": \"keychain\"", where.Stdout, StringComparison.Ordinal);
        var status = await Processes.Latchkey(_home.Path, null, keyring.Environment, "status");
        Assert.Contains("Master key: the Secret Service", status.Stdout, StringComparison.Ordinal);
        var doctor = await Processes.Latchkey(_home.Path, null, keyring.Environment, "doctor", "--json");
        Assert.True(doctor.ExitCode == 0, doctor.ToString());
        Assert.Contains("The master key is in the Secret Service", doctor.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyMove_ToFileAndBack_TheRecordsStayReadableAndOnlyOnePlaceHoldsTheKey()
    {
        using var keyring = KeychainSession.Start();
        await Add(keyring, "openai", "sk-openai-move");
        var original = keyring.Lookup(_home.Path)!;

        var toFile = await Processes.Latchkey(_home.Path, null, keyring.Environment, "key", "move", "--to", "file");
        Assert.True(toFile.ExitCode == 0, toFile.ToString());
        Assert.Contains("opened all 1 record(s)", toFile.Stderr, StringComparison.Ordinal);
        Assert.Null(keyring.Lookup(_home.Path));
        Assert.False(File.Exists(Path.Combine(_home.Path, "master.key.keychain")));
        Assert.Equal(Convert.FromBase64String(original), await File.ReadAllBytesAsync(Path.Combine(_home.Path, "master.key")));
        Assert.Equal(StoreHome.FileMode, File.GetUnixFileMode(Path.Combine(_home.Path, "master.key")));
        await AssertToken(keyring, "openai", "sk-openai-move");

        var again = await Processes.Latchkey(_home.Path, null, keyring.Environment, "key", "move", "--to", "file");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("already", again.Stdout, StringComparison.Ordinal);

        var toKeychain = await Processes.Latchkey(_home.Path, null, keyring.Environment, "key", "move", "--to", "keychain");
        Assert.True(toKeychain.ExitCode == 0, toKeychain.ToString());
        Assert.False(File.Exists(Path.Combine(_home.Path, "master.key")));
        Assert.Equal(original, keyring.Lookup(_home.Path));
        await AssertToken(keyring, "openai", "sk-openai-move");
    }

    [Fact]
    public async Task LockedKeyring_ClearErrorNamingWhatToUnlock_NoKeyMadeAnywhere()
    {
        using var keyring = KeychainSession.Start();
        await Add(keyring, "anthropic", "sk-ant-locked");
        keyring.Lock();

        var token = await Processes.Latchkey(_home.Path, null, keyring.Environment, "token", "anthropic");
        Assert.NotEqual(0, token.ExitCode);
        Assert.Contains("locked", token.Stderr, StringComparison.Ordinal);
        Assert.Contains("Unlock the login keyring", token.Stderr, StringComparison.Ordinal);
        Assert.Contains("no new key was made", token.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_home.Path, "master.key")));

        // A new home with a locked keyring: an error, and neither a key nor a database.
        var fresh = Path.Combine(_home.Root, "fresh");
        var list = await Processes.Latchkey(fresh, null, keyring.Environment, "list");
        Assert.NotEqual(0, list.ExitCode);
        Assert.Contains("locked", list.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(fresh, "master.key")));
        Assert.False(File.Exists(Path.Combine(fresh, "master.key.keychain")));
        Assert.False(File.Exists(Path.Combine(fresh, "latchkey.db")));
        Assert.Null(keyring.Lookup(fresh));

        var doctor = await Processes.Latchkey(_home.Path, null, keyring.Environment, "doctor", "--json");
        Assert.Equal(1, doctor.ExitCode);
        Assert.Contains("locked", doctor.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoKeychainReachable_TheKeyFileAsBefore_AndALaterKeychainDoesNotTakeOver()
    {
        var noBus = new Dictionary<string, string> { ["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=" + Path.Combine(_home.Root, "no-bus"), ["LATCHKEY_KEYCHAIN"] = string.Empty };
        var add = await Processes.Latchkey(_home.Path, "sk-file\n", noBus, "add", "anthropic", "--upstream", "https://api.anthropic.com");
        Assert.True(add.ExitCode == 0, add.ToString());
        Assert.True(File.Exists(Path.Combine(_home.Path, "master.key")));
        Assert.False(File.Exists(Path.Combine(_home.Path, "master.key.keychain")));

        using var keyring = KeychainSession.Start();
        await AssertToken(keyring, "anthropic", "sk-file");
        Assert.Null(keyring.Lookup(_home.Path));
        var doctor = await Processes.Latchkey(_home.Path, null, keyring.Environment, "doctor", "--json");
        Assert.Contains("latchkey key move --to keychain", doctor.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TeamKeyFile_IsReadAsItIs_AndNothingGoesToTheKeychain()
    {
        using var keyring = KeychainSession.Start();
        var team = Path.Combine(_home.Root, "team.key");
        var teamKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        File.WriteAllBytes(team, teamKey);
        File.SetUnixFileMode(team, StoreHome.FileMode);
        var env = new Dictionary<string, string>(keyring.Environment) { [StoreSelector.KeyFileVariable] = team };

        var key = StoreSelector.LoadSharedKey(new StoreHome(_home.Path), name => env.TryGetValue(name, out var v) ? v : null);

        Assert.Equal(teamKey, key);
        Assert.Null(keyring.Lookup(_home.Path));
        Assert.False(File.Exists(Path.Combine(_home.Path, "master.key.keychain")));
    }

    [Fact]
    public async Task Home_MadeThroughASymlinkThenReachedByItsRealPathOrWithATrailingSlash_FindsItsKeyEveryTime()
    {
        using var keyring = KeychainSession.Start();
        Directory.CreateDirectory(_home.Path, StoreHome.FolderMode);
        var link = Path.Combine(_home.Root, "link");
        File.CreateSymbolicLink(link, _home.Path);
        var add = await Processes.Latchkey(link + "/", "sk-ant-canonical\n", keyring.Environment, "add", "anthropic", "--upstream", "https://api.example.com");
        Assert.True(add.ExitCode == 0, add.ToString());

        Assert.NotNull(keyring.Lookup(_home.Path)); // the item's account is the real path, without the link or the slash
        Assert.Null(keyring.Lookup(link));
        Assert.Null(keyring.Lookup(link + "/"));
        Assert.Equal(_home.Path, NoteAccount());
        foreach (var spelling in new[] { _home.Path, _home.Path + "/", link, link + "/" })
        {
            var token = await Processes.Latchkey(spelling, null, keyring.Environment, "token", "anthropic");
            Assert.True(token.ExitCode == 0 && token.Stdout.Trim() == "sk-ant-canonical", $"--home {spelling}: {token}");
        }
    }

    [Fact]
    public async Task OldNoteWithoutTheAccount_ItemMadeForTheHomeSpelledWithASlash_FoundByAnySpellingAndTheNoteLearnsIt()
    {
        using var keyring = KeychainSession.Start();
        await Add(keyring, "openai", "sk-openai-old-note");
        var secret = keyring.Lookup(_home.Path)!;
        var keyId = JsonNode.Parse(File.ReadAllText(NotePath))!["key_id"]!.GetValue<string>();

        // What an earlier Latchkey left for a home first used as --home H/: the item under "H/", a note without the account.
        keyring.Clear(_home.Path);
        keyring.Store(_home.Path + "/", secret);
        File.WriteAllText(NotePath, $$"""{"keychain":"secret-service","key_id":"{{keyId}}"}""");

        await AssertToken(keyring, "openai", "sk-openai-old-note");
        Assert.Equal(_home.Path + "/", NoteAccount());
        var link = Path.Combine(_home.Root, "link");
        File.CreateSymbolicLink(link, _home.Path);
        var throughLink = await Processes.Latchkey(link, null, keyring.Environment, "token", "openai");
        Assert.True(throughLink.ExitCode == 0 && throughLink.Stdout.Trim() == "sk-openai-old-note", throughLink.ToString());
    }

    [Fact]
    public async Task FirstUse_ProcessesWithAndWithoutTheKeychainRacing_OneKeyAndEveryRecordReadableByBoth()
    {
        using var keyring = KeychainSession.Start();
        var off = new Dictionary<string, string>(keyring.Environment) { ["LATCHKEY_KEYCHAIN"] = "off" };
        var homes = Enumerable.Range(1, 4).Select(i => Path.Combine(_home.Root, $"race-{i}")).ToList();
        var drivers = new List<Process>();
        foreach (var home in homes)
        {
            drivers.Add(StartDriver(home, keyring.Environment, "on"));
            drivers.Add(StartDriver(home, off, "off"));
        }

        foreach (var driver in drivers)
        {
            Assert.Equal("ready", await driver.StandardOutput.ReadLineAsync());
        }

        _home.Go();
        foreach (var driver in drivers)
        {
            using (driver)
            {
                var error = driver.StandardError.ReadToEndAsync();
                using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
                await driver.WaitForExitAsync(timeout.Token);
                Assert.True(driver.ExitCode == 0, $"a driver failed: {await error}");
            }
        }

        foreach (var home in homes)
        {
            var file = File.Exists(Path.Combine(home, "master.key"));
            var note = File.Exists(Path.Combine(home, "master.key.keychain"));
            Assert.True(file ^ note, $"{home}: master.key {(file ? "and" : "nor")} a keychain note");
            Assert.Equal(note, keyring.Lookup(home) is not null);
            foreach (var environment in new[] { keyring.Environment, off })
            {
                foreach (var name in new[] { "on", "off" })
                {
                    var token = await Processes.Latchkey(home, null, environment, "token", name);
                    Assert.True(token.ExitCode == 0 && token.Stdout.Trim() == $"{name}:0",
                        $"{home}, record '{name}', keychain {environment["LATCHKEY_KEYCHAIN"]}: {token}");
                }
            }
        }
    }

    [Fact]
    public async Task ItemPlantedForTheHomesPath_WithSealedDataUnderAnotherKey_RefusedAndNothingChanged()
    {
        using var keyring = KeychainSession.Start();
        var off = new Dictionary<string, string>(keyring.Environment) { ["LATCHKEY_KEYCHAIN"] = "off" };
        var add = await Processes.Latchkey(_home.Path, "sk-ant-sealed\n", off, "add", "anthropic", "--upstream", "https://api.example.com");
        Assert.True(add.ExitCode == 0, add.ToString());

        // The home's master.key is lost (kept aside here), and the keychain holds an item for the home's path under
        // another key: left by an earlier home at this path, or planted by another program of this user.
        var keyFile = Path.Combine(_home.Path, "master.key");
        File.Move(keyFile, Path.Combine(_home.Root, "master.key.aside"));
        var planted = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        keyring.Store(_home.Path, planted);
        var database = await File.ReadAllBytesAsync(Path.Combine(_home.Path, "latchkey.db"));

        var token = await Processes.Latchkey(_home.Path, null, keyring.Environment, "token", "anthropic");
        var add2 = await Processes.Latchkey(_home.Path, "sk-ant-second\n", keyring.Environment, "add", "second", "--upstream", "https://api.example.com");

        Assert.True(token.ExitCode != 0 && token.Stdout.Length == 0, token.ToString());
        Assert.Contains("is not this home's key", token.Stderr, StringComparison.Ordinal);
        Assert.Contains("the item was not used", token.Stderr, StringComparison.Ordinal);
        Assert.Contains($"secret-tool clear application latchkey home '{_home.Path}'", token.Stderr, StringComparison.Ordinal);
        Assert.NotEqual(0, add2.ExitCode);
        Assert.False(File.Exists(NotePath));
        Assert.False(File.Exists(keyFile));
        Assert.Equal(planted, keyring.Lookup(_home.Path));
        Assert.Equal(database, await File.ReadAllBytesAsync(Path.Combine(_home.Path, "latchkey.db")));

        // With no data, an item found for the path is this user's own key for a home made anew: adopted.
        var fresh = Path.Combine(_home.Root, "fresh");
        keyring.Store(fresh, planted);
        var list = await Processes.Latchkey(fresh, null, keyring.Environment, "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.True(File.Exists(Path.Combine(fresh, "master.key.keychain")));
    }

    [Fact]
    public async Task KeyMove_ToFileWhenTheKeyringKeepsTheItem_MovedButWarnsThatACopyIsLeftAndHowToRemoveIt()
    {
        using var keyring = KeychainSession.Start(denyItemDelete: true);
        await Add(keyring, "openai", "sk-openai-left");
        var original = keyring.Lookup(_home.Path)!;

        var move = await Processes.Latchkey(_home.Path, null, keyring.Environment, "key", "move", "--to", "file");

        Assert.True(move.ExitCode == 0, move.ToString());
        Assert.Contains("Moved the master key", move.Stdout, StringComparison.Ordinal);
        Assert.Contains("could not be removed", move.Stderr, StringComparison.Ordinal);
        Assert.Contains("still holds this home's key", move.Stderr, StringComparison.Ordinal);
        Assert.Contains($"secret-tool clear application latchkey home '{_home.Path}'", move.Stderr, StringComparison.Ordinal);
        Assert.Equal(original, keyring.Lookup(_home.Path)); // the copy really is still there
        Assert.Equal(Convert.FromBase64String(original), await File.ReadAllBytesAsync(Path.Combine(_home.Path, "master.key")));
        Assert.False(File.Exists(NotePath));
        await AssertToken(keyring, "openai", "sk-openai-left");
    }

    [Fact]
    public async Task KeychainHome_WithoutASessionBus_KeychainUnavailableSayingWhatToDo_NothingCreated()
    {
        using var keyring = KeychainSession.Start();
        await Add(keyring, "anthropic", "sk-ant-nobus");
        var stored = keyring.Lookup(_home.Path);
        var before = Directory.EnumerateFileSystemEntries(_home.Path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        var database = await File.ReadAllBytesAsync(Path.Combine(_home.Path, "latchkey.db"));
        var noBus = new Dictionary<string, string> { ["DBUS_SESSION_BUS_ADDRESS"] = string.Empty, ["LATCHKEY_KEYCHAIN"] = string.Empty };

        var token = await Processes.Latchkey(_home.Path, null, noBus, "token", "anthropic");
        var add = await Processes.Latchkey(_home.Path, "sk-ant-second\n", noBus, "add", "second", "--upstream", "https://api.example.com");

        foreach (var result in new[] { token, add })
        {
            Assert.True(result.ExitCode != 0 && result.Stdout.Length == 0, result.ToString());
            Assert.Contains("cannot reach: there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("no new key was made", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("Run Latchkey in the desktop session where the keyring runs, or set DBUS_SESSION_BUS_ADDRESS", result.Stderr, StringComparison.Ordinal);
            Assert.Contains("latchkey key move --to file", result.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(before, Directory.EnumerateFileSystemEntries(_home.Path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList());
        Assert.Equal(database, await File.ReadAllBytesAsync(Path.Combine(_home.Path, "latchkey.db")));
        Assert.Equal(stored, keyring.Lookup(_home.Path));
        await AssertToken(keyring, "anthropic", "sk-ant-nobus");
    }

    private string NotePath => Path.Combine(_home.Path, "master.key.keychain");

    private string? NoteAccount() => JsonNode.Parse(File.ReadAllText(NotePath))!["account"]?.GetValue<string>();

    /// <summary>A store driver (<c>tests/Latchkey.StoreDriver</c>) making <paramref name="home"/>'s first record, <paramref name="name"/>, once the test says go.</summary>
    private static Process StartDriver(string home, IReadOnlyDictionary<string, string> environment, string name)
    {
        var info = Processes.StartInfo(Processes.StoreDriverExe, home, ["first", home, name]);
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info)!;
        process.StandardInput.Close();
        return process;
    }

    private async Task Add(KeychainSession keyring, string name, string secret)
    {
        var add = await Processes.Latchkey(_home.Path, secret + "\n", keyring.Environment, "add", name, "--upstream", "https://api.example.com");
        Assert.True(add.ExitCode == 0, add.ToString());
    }

    private async Task AssertToken(KeychainSession keyring, string name, string expected)
    {
        var token = await Processes.Latchkey(_home.Path, null, keyring.Environment, "token", name);
        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal(expected, token.Stdout.Trim());
    }
}

/// <summary>
/// A private D-Bus session bus with a real <c>gnome-keyring-daemon</c> on it, its login keyring unlocked with a
/// password given on standard input, in a folder of its own (HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR), so nothing
/// touches the user's real keyring. Ended (bus and daemon) on dispose.
/// </summary>
internal sealed class KeychainSession : IDisposable
{
    private readonly string _root;
    private readonly int _busPid;

    private KeychainSession(string root, string address, int busPid)
    {
        _root = root;
        _busPid = busPid;
        Environment = new Dictionary<string, string>
        {
            ["DBUS_SESSION_BUS_ADDRESS"] = address,
            ["LATCHKEY_KEYCHAIN"] = string.Empty,
        };
    }

    /// <summary>What a latchkey process needs to find this keyring (and not the test run's <c>LATCHKEY_KEYCHAIN=off</c>).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; }

    /// <summary>Starts the bus and the keyring. <paramref name="denyItemDelete"/>: the bus refuses every item's Delete call (a keyring that will not let an item go).</summary>
    public static KeychainSession Start(bool denyItemDelete = false)
    {
        var root = Directory.CreateTempSubdirectory("latchkey-keyring-").FullName;
        foreach (var folder in new[] { "home", "run", "data" })
        {
            Directory.CreateDirectory(Path.Combine(root, folder), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        string[] busConfig = ["--session"];
        if (denyItemDelete)
        {
            var config = Path.Combine(root, "session.conf");
            File.WriteAllText(config,
                """
                <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
                <busconfig>
                  <include>/usr/share/dbus-1/session.conf</include>
                  <policy context="mandatory">
                    <deny send_interface="org.freedesktop.Secret.Item" send_member="Delete"/>
                  </policy>
                </busconfig>
                """);
            busConfig = ["--config-file=" + config];
        }

        var bus = Run("dbus-daemon", root, null, null, [.. busConfig, "--print-address=1", "--print-pid=1", "--fork"]);
        var lines = bus.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var session = new KeychainSession(root, lines[0], int.Parse(lines[1], System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            Run("gnome-keyring-daemon", root, lines[0], "test-keyring-password", "--unlock", "--components=secrets");
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>The secret stored for <paramref name="home"/>, as <c>secret-tool lookup</c> sees it; null when there is none.</summary>
    public string? Lookup(string home)
    {
        var info = Info("secret-tool", _root, Environment["DBUS_SESSION_BUS_ADDRESS"], "lookup", "application", "latchkey", "home", Path.GetFullPath(home));
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 && output.Length > 0 ? output.Trim() : null;
    }

    /// <summary>Stores <paramref name="secret"/> for <paramref name="account"/> exactly as given, as <c>secret-tool store</c> does (another program, or an earlier Latchkey).</summary>
    public void Store(string account, string secret) => Run("secret-tool", _root, Environment["DBUS_SESSION_BUS_ADDRESS"], secret,
        "store", "--label=planted", "application", "latchkey", "home", account);

    /// <summary>Removes the item of <paramref name="account"/> exactly as given (<c>secret-tool clear</c>).</summary>
    public void Clear(string account) => Run("secret-tool", _root, Environment["DBUS_SESSION_BUS_ADDRESS"], null,
        "clear", "application", "latchkey", "home", account);

    /// <summary>Locks the login keyring (the Secret Service's own Lock call, as a screen lock would).</summary>
    public void Lock() => Run("dbus-send", _root, Environment["DBUS_SESSION_BUS_ADDRESS"], null,
        "--session", "--dest=org.freedesktop.secrets", "--type=method_call", "--print-reply", "/org/freedesktop/secrets",
        "org.freedesktop.Secret.Service.Lock", "array:objpath:/org/freedesktop/secrets/collection/login");

    public void Dispose()
    {
        try
        {
            // The keyring daemon on this bus (the one started here, or one the bus activated) does not always leave
            // with its bus: ask the bus for its process id and end it first.
            var owner = Run("dbus-send", _root, Environment["DBUS_SESSION_BUS_ADDRESS"], null, "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus", "org.freedesktop.DBus.GetConnectionUnixProcessID", "string:org.freedesktop.secrets");
            if (owner.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [.., "uint32", var pid])
            {
                using var daemon = Process.GetProcessById(int.Parse(pid.Trim(), System.Globalization.CultureInfo.InvariantCulture));
                daemon.Kill();
                daemon.WaitForExit(5000);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException)
        {
        }

        try
        {
            using var bus = Process.GetProcessById(_busPid);
            bus.Kill();
            bus.WaitForExit(5000);
        }
        catch (ArgumentException)
        {
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static ProcessStartInfo Info(string exe, string root, string? address, params string[] args)
    {
        var info = new ProcessStartInfo(exe) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["HOME"] = Path.Combine(root, "home");
        info.Environment["XDG_DATA_HOME"] = Path.Combine(root, "data");
        info.Environment["XDG_RUNTIME_DIR"] = Path.Combine(root, "run");
        info.Environment.Remove("DBUS_SESSION_BUS_ADDRESS");
        if (address is not null)
        {
            info.Environment["DBUS_SESSION_BUS_ADDRESS"] = address;
        }

        return info;
    }

    private static string Run(string exe, string root, string? address, string? stdin, params string[] args)
    {
        using var process = Process.Start(Info(exe, root, address, args))
            ?? throw new InvalidOperationException($"{exe} did not start (test.sh installs it: dbus-daemon, gnome-keyring, libsecret-tools).");
        if (stdin is not null)
        {
            process.StandardInput.Write(stdin);
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(15000) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({(process.HasExited ? $"exit {process.ExitCode}" : "timed out")}): {error}");
        }

        return output;
    }
}
