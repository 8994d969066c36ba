using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Latchkey.Store;

namespace Latchkey.Tests.Security;

/// <summary>Small helpers the attack tests share: real processes and addresses, nothing simulated.</summary>
internal static class SecurityWorld
{
    /// <summary>
    /// An IPv4 address of this machine that is not loopback (an interface that is up), so a test can run a server
    /// that is "another machine" to the URL policy while staying on this host. Falls back to 0.0.0.0, which Linux
    /// also delivers to this machine but which is not a loopback address either.
    /// </summary>
    public static IPAddress NonLoopbackAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(i => i.OperationalStatus == OperationalStatus.Up && i.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a))
        ?? IPAddress.Any;

    /// <summary>Runs the real <c>sqlite3</c> command-line shell on a database, as someone who can write the file would.</summary>
    public static async Task<string> Sqlite3Async(string database, string sql)
    {
        var info = new ProcessStartInfo("sqlite3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-batch");
        info.ArgumentList.Add(database);
        info.ArgumentList.Add(sql);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(process.ExitCode == 0, $"sqlite3 failed: {await stderr}");
        return (await stdout).Trim();
    }

    /// <summary>The database file of a home.</summary>
    public static string DatabaseOf(string home) => new StoreHome(home).DatabasePath;

    /// <summary>Writes a record through the store library itself (as the CLI would, but without the CLI's checks).</summary>
    public static async Task CreateAsync(string home, string name, CredentialKind kind, CredentialMetadata metadata, CredentialSecrets secrets)
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(home), TimeProvider.System);
        var created = await store.CreateAsync(new NewCredential(name, kind, metadata, secrets), default);
        Assert.True(created.Succeeded, created.Outcome.ToString());
    }

    /// <summary>An MCP server's record with a fresh access token (no sign-in needed; the token engine serves it as is).</summary>
    public static CredentialMetadata McpServer(string url, string transport = "streamable-http") => new()
    {
        Upstream = url,
        McpTransport = transport,
        Resource = url,
        Issuer = "https://auth.example.invalid",
        TokenEndpoint = "https://auth.example.invalid/token",
        Client = new ClientRegistration("client-1", "dcr", "none"),
        GrantType = "authorization_code",
        ObtainedAt = DateTimeOffset.UtcNow,
        ExpiresAt = DateTimeOffset.UtcNow.AddHours(1),
        RefreshAfter = DateTimeOffset.UtcNow.AddMinutes(45),
    };
}
