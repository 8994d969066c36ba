using System.Diagnostics;
using System.Globalization;
using Latchkey.Store;
using Latchkey.Tests.Gateway;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// A home folder whose store (the SQLite file, or a database on the shared <see cref="PostgresServer"/>) the test
/// writes as the attacker would: with the real <c>sqlite3</c> or <c>psql</c> client, never through Latchkey, and
/// never with the key file. Everything Latchkey does here runs as the real <c>latchkey</c> (or <c>latchkey-token</c>)
/// process.
/// </summary>
internal sealed class WritableStore : IAsyncDisposable
{
    private readonly string? _url;

    private WritableStore(string backend, string? url)
    {
        Backend = backend;
        _url = url;
        Environment = url is null ? new Dictionary<string, string>() : new Dictionary<string, string> { [StoreSelector.StoreVariable] = url };
    }

    public string Backend { get; }

    public TempHome Home { get; } = new();

    /// <summary>The environment every <c>latchkey</c> process of this store gets (<c>LATCHKEY_STORE</c> for PostgreSQL).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; }

    public static async Task<WritableStore> CreateAsync(string backend, PostgresServer server) => backend switch
    {
        "sqlite" => new WritableStore(backend, null),
        "postgresql" => new WritableStore(backend, await server.CreateDatabaseAsync()),
        _ => throw new ArgumentOutOfRangeException(nameof(backend)),
    };

    /// <summary>A home with the SQLite store (no PostgreSQL server needed).</summary>
    public static WritableStore Sqlite() => new("sqlite", null);

    /// <summary>Runs <c>latchkey ARGS</c> on this store.</summary>
    public Task<Processes.Result> Cli(string? stdin, params string[] args) => Processes.Latchkey(Home.Path, stdin, Environment, args);

    /// <summary>Runs the native-token program (<c>latchkey-token token NAME</c>), handing what it does not serve to the full tool.</summary>
    public Task<Processes.Result> TokenProgram(string name)
    {
        var info = Processes.StartInfo(Processes.LatchkeyTokenExe, Home.Path, ["token", name]);
        info.Environment["LATCHKEY_FULL_EXE"] = Processes.LatchkeyExe;
        foreach (var (key, value) in Environment)
        {
            info.Environment[key] = value;
        }

        return Processes.Run(info, null);
    }

    public Task<GatewayProcess> StartGatewayAsync() => GatewayProcess.StartAsync(Home, Environment);

    /// <summary>Opens the store in this process, as Latchkey itself would (to write what the CLI has no command for).</summary>
    public ILatchkeyStore Open() => StoreSelector.Open(_url, new StoreHome(Home.Path), TimeProvider.System, _ => null);

    /// <summary>Runs <paramref name="sql"/> on the database with the real command-line client, as the attacker.</summary>
    public async Task TamperAsync(string sql)
    {
        var info = _url is null
            ? new ProcessStartInfo("sqlite3") { ArgumentList = { "-bail", "-cmd", ".timeout 10000", Path.Combine(Home.Path, "latchkey.db"), sql } }
            : new ProcessStartInfo("psql") { ArgumentList = { "-X", "-q", "-v", "ON_ERROR_STOP=1", _url, "-c", sql } };
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.RedirectStandardInput = true;
        info.UseShellExecute = false;
        var result = await Processes.Run(info, null);
        Assert.True(result.ExitCode == 0, $"{info.FileName} failed: {result}");
    }

    /// <summary>Reads one value with the real command-line client.</summary>
    public async Task<string> QueryAsync(string sql)
    {
        var info = _url is null
            ? new ProcessStartInfo("sqlite3") { ArgumentList = { "-bail", "-cmd", ".timeout 10000", Path.Combine(Home.Path, "latchkey.db"), sql } }
            : new ProcessStartInfo("psql") { ArgumentList = { "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", _url, "-c", sql } };
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.RedirectStandardInput = true;
        info.UseShellExecute = false;
        var result = await Processes.Run(info, null);
        Assert.True(result.ExitCode == 0, $"{info.FileName} failed: {result}");
        return result.Stdout.Trim();
    }

    public static string Millis(DateTimeOffset at) => at.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    public ValueTask DisposeAsync()
    {
        Home.Dispose();
        return ValueTask.CompletedTask;
    }
}
