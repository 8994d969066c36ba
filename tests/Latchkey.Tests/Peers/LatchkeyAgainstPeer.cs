using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Latchkey.Store;
using Xunit.Abstractions;

namespace Latchkey.Tests.Peers;

/// <summary>
/// One test's world: a private Latchkey home, the real authorization server, and the real <c>latchkey</c>
/// executable run as OS processes with the headless test browser as its <c>LATCHKEY_BROWSER</c>. Output that
/// may hold a token (the stdout of <c>latchkey token</c>) is never written to the test output.
/// </summary>
internal sealed class LatchkeyAgainstPeer : IAsyncDisposable
{
    private readonly TempHome _home = new();
    private readonly ITestOutputHelper _output;

    private LatchkeyAgainstPeer(OidcProviderPeer peer, ITestOutputHelper output)
    {
        Peer = peer;
        _output = output;
    }

    public OidcProviderPeer Peer { get; }

    public string Home => _home.Path;

    /// <summary>The home and the folder around it (to start a gateway over the same home).</summary>
    public TempHome TempHome => _home;

    public string BrowserLog => Path.Combine(_home.Root, "browser.log");

    /// <summary>Extra environment for every <c>latchkey</c> run (e.g. <c>LATCHKEY_STORE</c>).</summary>
    public Dictionary<string, string> Environment { get; } = [];

    public static async Task<LatchkeyAgainstPeer> StartAsync(ITestOutputHelper output, IReadOnlyDictionary<string, string>? environment = null) =>
        new(await OidcProviderPeer.StartAsync(output, environment), output);

    public ProcessStartInfo StartInfo(params string[] args)
    {
        var info = Processes.StartInfo(Processes.LatchkeyExe, _home.Path, args);
        info.Environment["LATCHKEY_BROWSER"] = $"{Processes.TestBrowserExe} {{url}}";
        info.Environment["LATCHKEY_TEST_BROWSER_LOG"] = BrowserLog;
        foreach (var (name, value) in Environment)
        {
            info.Environment[name] = value;
        }

        return info;
    }

    /// <summary>Runs <c>latchkey ARGS</c> to completion (2 minutes at most).</summary>
    public async Task<Processes.Result> RunWithInputAsync(string? stdin, params string[] args)
    {
        using var process = Process.Start(StartInfo(args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true); // never leave a hung latchkey behind
            throw;
        }

        var result = new Processes.Result(process.ExitCode, await stdout, await stderr);
        _output.WriteLine($"$ latchkey {string.Join(' ', args)} -> exit {result.ExitCode}{(args[0] == "token" || args is ["mcp", "config", ..] || args is ["keys", "create", ..] ? string.Empty : $"\n{result.Stdout.TrimEnd()}")}\n{result.Stderr.TrimEnd()}");
        return result;
    }

    public Task<Processes.Result> RunAsync(params string[] args) => RunWithInputAsync(null, args);

    /// <summary>Signs in and fails the test (showing the browser's log) unless it worked.</summary>
    public async Task LoginAsync(string name, params string[] args) => await LoginWithInputAsync(null, name, args);

    public async Task LoginWithInputAsync(string? stdin, string name, params string[] args)
    {
        var result = await RunWithInputAsync(stdin, ["login", name, .. args]);
        Assert.True(result.ExitCode == 0, $"login {name} failed: {result}\nbrowser: {ReadBrowserLog()}\nserver: {Peer.Stderr}");
    }

    /// <summary>Runs <c>latchkey token NAME</c>; the token is returned, never shown.</summary>
    public async Task<TokenRun> TokenAsync(string name)
    {
        var r = await RunAsync("token", name);
        return new TokenRun(r.ExitCode, r.ExitCode == 0 ? r.Stdout.TrimEnd('\n') : null, r.Stderr);
    }

    /// <summary><c>latchkey status NAME --json</c>'s one object.</summary>
    public async Task<JsonElement> StatusAsync(string name)
    {
        var r = await RunAsync("status", name, "--json");
        Assert.True(r.ExitCode is 0 or 3, r.ToString());
        using var json = JsonDocument.Parse(r.Stdout);
        return json.RootElement[0].Clone();
    }

    /// <summary>The stored record, read through the store library (the test's own process).</summary>
    public async Task<CredentialRecord?> ReadAsync(string name)
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
        return await store.GetAsync(name, default);
    }

    /// <summary>What must not change when a sign-in is refused: version, state, both fingerprints, client, issuer.</summary>
    public async Task<string> SnapshotAsync(string name)
    {
        var r = await ReadAsync(name) ?? throw new InvalidOperationException($"no record {name}");
        return $"v{r.Version} {r.State} rt:{r.RefreshTokenFingerprint} at:{r.AccessTokenFingerprint} client:{r.Metadata.Client?.ClientId} issuer:{r.Metadata.Issuer} resource:{r.Metadata.Resource} scopes:{string.Join(' ', r.Metadata.ScopesGranted)}";
    }

    public string ReadBrowserLog() => File.Exists(BrowserLog) ? File.ReadAllText(BrowserLog) : "(no browser log)";

    /// <summary>Signs in with a short access-token lifetime, waits until the token is due, then makes new tokens
    /// long-lived again, so that exactly one refresh is due when the test starts.</summary>
    public async Task LoginExpiredAsync(string name, params string[] args)
    {
        await Peer.SetFaultsAsync(new { atTtl = 2 });
        await LoginAsync(name, args);
        await UntilExpiredAsync(name);
        await Peer.SetFaultsAsync(new { atTtl = 300 });
    }

    /// <summary>Waits until the access token stored for <paramref name="name"/> has expired. The server that issued it
    /// and every <c>latchkey</c> process judge that on the machine's real clock, so the test waits in real time.</summary>
    public async Task UntilExpiredAsync(string name)
    {
        var record = await ReadAsync(name);
        await RealTime.PastAsync(record!.Metadata.ExpiresAt!.Value, TimeSpan.FromMilliseconds(200));
    }

    public async ValueTask DisposeAsync()
    {
        await Peer.DisposeAsync();
        _home.Dispose();
    }

    /// <summary>Decodes a JWT's payload (no signature check: <see cref="OidcProviderPeer.IntrospectAsync"/> does that).</summary>
    public static JsonElement JwtPayload(string jwt)
    {
        var parts = jwt.Split('.');
        Assert.Equal(3, parts.Length);
        var payload = parts[1].Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
        using var json = JsonDocument.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(payload)));
        return json.RootElement.Clone();
    }
}

/// <summary>A <c>latchkey token</c> run; <see cref="ToString"/> never shows the token.</summary>
internal sealed record TokenRun(int ExitCode, string? Token, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}, token: {(Token is null ? "none" : "***")}, stderr: {Stderr}";
}
