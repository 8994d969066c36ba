using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Latchkey.Testing;

/// <summary>
/// A real PostgreSQL for tests: Debian's binaries (<c>/usr/lib/postgresql/*/bin</c>), <c>initdb</c> into a
/// temporary folder, <c>pg_ctl</c> on a free loopback port (its socket in the same folder), stopped and deleted on
/// dispose. As root, PostgreSQL refuses to run, so the server runs as the <c>postgres</c> user (else
/// <c>nobody</c>) through <c>runuser</c>. Loopback only; the superuser <c>latchkey</c> is trusted, other roles need
/// their password (SCRAM).
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private const string Superuser = "latchkey";
    private static int _databases;

    private readonly string _bin;
    private readonly string? _runAs;

    public PostgresServer()
    {
        _bin = FindBinaries() ?? throw new InvalidOperationException(
            "PostgreSQL's server binaries were not found (/usr/lib/postgresql/*/bin/initdb). Install them: apt-get install -y postgresql (test.sh does).");
        _runAs = Environment.UserName == "root" || GetEuid() == 0 ? (UserExists("postgres") ? "postgres" : "nobody") : null;
        Root = Directory.CreateTempSubdirectory("latchkey-pg-").FullName;
        Port = FreePort();
    }

    public string Root { get; }

    public string DataPath => Path.Combine(Root, "data");

    public int Port { get; private set; }

    /// <summary>A connection string to the maintenance database, as the superuser.</summary>
    public string AdminConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1", Port = Port, Username = Superuser, Database = "postgres", Pooling = false,
    }.ConnectionString;

    public async Task InitializeAsync()
    {
        if (_runAs is not null)
        {
            await RunAsync("chown", [_runAs, Root]);
        }

        await RunAsync(Path.Combine(_bin, "initdb"), ["-D", DataPath, "-U", Superuser, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"], asServer: true);

        // The superuser needs no password; any other role must give its own (so tests can check password handling).
        await File.WriteAllTextAsync(Path.Combine(DataPath, "pg_hba.conf"),
            $"local all all trust\nhost all {Superuser} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartAsync();
                return;
            }
            catch (InvalidOperationException ex) when (attempt < 5 && ex.Message.Contains("could not bind", StringComparison.OrdinalIgnoreCase))
            {
                Port = FreePort(); // another process took the free port between our look and the server's bind
            }
        }
    }

    /// <summary>Starts (or restarts after <see cref="StopAsync"/>) the server on the same port and data.</summary>
    public Task StartAsync() => RunAsync(Path.Combine(_bin, "pg_ctl"),
        ["-D", DataPath, "-l", Path.Combine(Root, "server.log"), "-w", "-t", "60", "-o",
            $"-c listen_addresses=127.0.0.1 -p {Port.ToString(CultureInfo.InvariantCulture)} -k {Root} -c fsync=off -c max_connections=300",
            "start"], asServer: true);

    /// <summary>Stops the server: <c>fast</c> (clean, disconnects everyone) or <c>immediate</c> (a crash).</summary>
    public Task StopAsync(string mode = "fast") =>
        RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", DataPath, "-w", "-t", "60", "-m", mode, "stop"], asServer: true);

    /// <summary>Creates an empty database and returns its URL (no password: trust authentication).</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"lk_{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}";
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync();
        return $"postgresql://{Superuser}@127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/{name}";
    }

    /// <summary>A connection string for direct SQL on a database a test created.</summary>
    public string ConnectionStringFor(string url) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1", Port = Port, Username = Superuser, Database = url[(url.LastIndexOf('/') + 1)..], Pooling = false,
    }.ConnectionString;

    public async Task DisposeAsync()
    {
        try
        {
            await StopAsync("immediate");
        }
        catch (InvalidOperationException)
        {
            // already stopped
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string? FindBinaries()
    {
        if (!Directory.Exists("/usr/lib/postgresql"))
        {
            return null;
        }

        return Directory.GetDirectories("/usr/lib/postgresql")
            .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0))
            .Where(d => File.Exists(Path.Combine(d.Dir, "initdb")) && File.Exists(Path.Combine(d.Dir, "pg_ctl")))
            .OrderByDescending(d => d.Version)
            .Select(d => d.Dir)
            .FirstOrDefault();
    }

    private static bool UserExists(string user) => File.ReadLines("/etc/passwd").Any(l => l.StartsWith(user + ":", StringComparison.Ordinal));

    private static uint GetEuid() => uint.TryParse(File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal))?.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], out var uid) ? uid : uint.MaxValue;

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task RunAsync(string program, string[] args, bool asServer = false)
    {
        var start = new ProcessStartInfo(asServer && _runAs is not null ? "runuser" : program)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = Root,
        };
        if (asServer && _runAs is not null)
        {
            foreach (var arg in new[] { "-u", _runAs, "--", program })
            {
                start.ArgumentList.Add(arg);
            }
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["LC_ALL"] = "C";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            var log = Path.Combine(Root, "server.log");
            var tail = File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(10)) : string.Empty;
            throw new InvalidOperationException($"{Path.GetFileName(program)} {string.Join(' ', args)} exited {process.ExitCode}: {await stdout}{await stderr}\n{tail}");
        }
    }
}
