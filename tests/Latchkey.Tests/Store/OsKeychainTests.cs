using System.Diagnostics;
using System.Text;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>
/// The master key in the OS keychain, against a real <c>gnome-keyring-daemon</c> on a private D-Bus session bus
/// (<see cref="KeychainSession"/>): a new home keeps its key there and nothing in the home folder; records read
/// across processes; <c>key move</c> both ways; a locked keyring is a clear error that creates nothing; no
/// keychain falls back to <c>master.key</c>; a team's <c>LATCHKEY_KEY_FILE</c> never touches the keychain.
/// <c>secret-tool</c> (libsecret) checks from outside.
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

    public static KeychainSession Start()
    {
        var root = Directory.CreateTempSubdirectory("latchkey-keyring-").FullName;
        foreach (var folder in new[] { "home", "run", "data" })
        {
            Directory.CreateDirectory(Path.Combine(root, folder), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var bus = Run("dbus-daemon", root, null, null, "--session", "--print-address=1", "--print-pid=1", "--fork");
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
