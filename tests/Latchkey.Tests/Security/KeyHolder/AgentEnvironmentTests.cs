using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Latchkey.Store;
using Npgsql;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// What an agent started by <c>latchkey run -- AGENT</c> inherits. It must hold only its client key: not the real
/// provider keys of the user's shell (which its SDK would prefer, bypassing the gateway and every revocation), and not
/// Latchkey's own store and master-key settings (a PostgreSQL URL may carry the store's password). Unrelated variables
/// are kept. Proved with a real <c>latchkey run -- env</c>, on SQLite and on a real PostgreSQL store.
/// </summary>
public sealed class AgentEnvironmentTests
{
    [Theory]
    [InlineData("anthropic")]
    [InlineData("openai")]
    public async Task Run_ShellHoldsRealKeysAndLatchkeySettings_TheAgentGetsOnlyItsClientKey(string api)
    {
        using var home = new TempHome();
        var added = await Processes.Latchkey(home.Path, "sk-ant-api03-stored\n", "add", "provider", "--upstream", "http://127.0.0.1:9");
        Assert.True(added.ExitCode == 0, added.ToString());
        var shell = new Dictionary<string, string>
        {
            ["ANTHROPIC_API_KEY"] = "sk-ant-api03-REAL-" + Guid.NewGuid().ToString("N"),
            ["ANTHROPIC_AUTH_TOKEN"] = "sk-ant-oat01-REAL-" + Guid.NewGuid().ToString("N"),
            ["CLAUDE_CODE_OAUTH_TOKEN"] = "sk-ant-oat01-REAL-" + Guid.NewGuid().ToString("N"),
            ["OPENAI_API_KEY"] = "sk-proj-REAL-" + Guid.NewGuid().ToString("N"),
            [StoreSelector.StoreVariable] = "sqlite",
            [StoreSelector.KeyFileVariable] = Path.Combine(home.Root, "team.key"),
            ["PGPASSWORD"] = "a-password-for-the-users-own-database", // not Latchkey's: its store is SQLite
            ["LATCHKEY_TEST_UNRELATED"] = "kept",
        };

        try
        {
            var env = await RunEnvAsync(home, shell, "--api", api);

            foreach (var name in new[] { "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", StoreSelector.StoreVariable, StoreSelector.KeyFileVariable })
            {
                Assert.False(env.ContainsKey(name), $"the agent inherited {name}");
            }

            var clientKey = env["LATCHKEY_KEY"];
            Assert.StartsWith("lk_", clientKey, StringComparison.Ordinal);
            Assert.Equal(clientKey, env.GetValueOrDefault(api == "anthropic" ? "ANTHROPIC_AUTH_TOKEN" : "OPENAI_API_KEY"));
            Assert.False(env.ContainsKey(api == "anthropic" ? "OPENAI_API_KEY" : "ANTHROPIC_AUTH_TOKEN"), "the agent inherited the other provider's real key");
            SecretAssert.Absent(string.Join('\n', env.Select(e => $"{e.Key}={e.Value}")), "the agent's environment",
                shell.Where(e => e.Value.Contains("REAL", StringComparison.Ordinal)).Select(e => (e.Key, e.Value)).ToArray());
            Assert.Equal("kept", env["LATCHKEY_TEST_UNRELATED"]);
            Assert.Equal(shell["PGPASSWORD"], env["PGPASSWORD"]);
        }
        finally
        {
            await StopGatewayAsync(home);
        }
    }

    /// <summary>Runs <c>latchkey run --credential provider ARGS -- env</c> with the shell's variables and returns the agent's environment.</summary>
    internal static async Task<Dictionary<string, string>> RunEnvAsync(TempHome home, IReadOnlyDictionary<string, string> shell, params string[] args)
    {
        var environment = new Dictionary<string, string>(shell) { ["LATCHKEY_LISTEN"] = "127.0.0.1:0" };
        var result = await Processes.Latchkey(home.Path, null, environment, ["run", "--credential", "provider", .. args, "--", "env"]);
        Assert.True(result.ExitCode == 0, $"exit {result.ExitCode}: {result.Stderr}"); // stdout holds the environment: not shown
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2)
            .GroupBy(p => p[0], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last()[1], StringComparer.Ordinal);
    }

    /// <summary>Stops the background gateway <c>latchkey run</c> started (its pid is in <c>gateway.json</c>).</summary>
    internal static async Task StopGatewayAsync(TempHome home)
    {
        var info = Path.Combine(home.Path, "gateway.json");
        if (File.Exists(info) && JsonNode.Parse(await File.ReadAllTextAsync(info))?["pid"]?.GetValue<int>() is { } pid)
        {
            try
            {
                using var gateway = Process.GetProcessById(pid);
                gateway.Kill();
                await gateway.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (ArgumentException)
            {
            }
        }
    }
}

/// <summary>
/// <see cref="AgentEnvironmentTests"/> on a PostgreSQL store reached with a password: the URL in
/// <c>LATCHKEY_STORE</c>, <c>PGPASSWORD</c> and <c>PGPASSFILE</c> are Latchkey's store credentials here, and the
/// agent gets none of them (nor the master key's path in <c>LATCHKEY_KEY_FILE</c>).
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class AgentEnvironmentOnPostgresTests(PostgresServer server)
{
    [Fact]
    public async Task Run_StoreIsPostgresWithAPassword_TheAgentGetsNoStoreSettingOrPassword()
    {
        using var home = new TempHome();
        var url = await server.CreateDatabaseAsync();
        var database = url[(url.LastIndexOf('/') + 1)..];
        var role = "lk_agent_env_" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var password = "PG-PASSWORD-" + Guid.NewGuid().ToString("N");
        await using (var connection = new NpgsqlConnection(server.AdminConnectionString))
        {
            await connection.OpenAsync();
            foreach (var sql in new[] { $"DROP ROLE IF EXISTS {role}", $"CREATE ROLE {role} LOGIN PASSWORD '{password}'", $"ALTER DATABASE {database} OWNER TO {role}" })
            {
                await using var command = new NpgsqlCommand(sql, connection);
                await command.ExecuteNonQueryAsync();
            }
        }

        var keyFile = Path.Combine(home.Root, "team.key");
        await File.WriteAllBytesAsync(keyFile, RandomNumberGenerator.GetBytes(32));
        File.SetUnixFileMode(keyFile, StoreHome.FileMode);
        var passFile = Path.Combine(home.Root, "pgpass");
        await File.WriteAllTextAsync(passFile, $"127.0.0.1:{server.Port}:{database}:{role}:{password}\n");
        File.SetUnixFileMode(passFile, StoreHome.FileMode);
        var shell = new Dictionary<string, string>
        {
            [StoreSelector.StoreVariable] = $"postgresql://{role}:{password}@127.0.0.1:{server.Port}/{database}",
            [StoreSelector.KeyFileVariable] = keyFile,
            ["PGPASSWORD"] = password,
            ["PGPASSFILE"] = passFile,
            ["LATCHKEY_TEST_UNRELATED"] = "kept",
        };
        var added = await Processes.Latchkey(home.Path, "sk-ant-api03-stored\n", shell, "add", "provider", "--upstream", "http://127.0.0.1:9");
        Assert.True(added.ExitCode == 0, added.ToString());

        try
        {
            var env = await AgentEnvironmentTests.RunEnvAsync(home, shell, "--api", "anthropic");

            foreach (var name in new[] { StoreSelector.StoreVariable, StoreSelector.KeyFileVariable, "PGPASSWORD", "PGPASSFILE" })
            {
                Assert.False(env.ContainsKey(name), $"the agent inherited {name}");
            }

            SecretAssert.Absent(string.Join('\n', env.Select(e => $"{e.Key}={e.Value}")), "the agent's environment", ("store password", password));
            Assert.StartsWith("lk_", env["ANTHROPIC_AUTH_TOKEN"], StringComparison.Ordinal);
            Assert.Equal("kept", env["LATCHKEY_TEST_UNRELATED"]);
        }
        finally
        {
            await AgentEnvironmentTests.StopGatewayAsync(home);
        }
    }
}
