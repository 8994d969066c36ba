using System.Text;
using System.Text.Json;
using Latchkey.Store;
using Microsoft.Data.Sqlite;

namespace Latchkey.Tests.Cli;

/// <summary>The credential commands, run as the real <c>latchkey</c> executable.</summary>
public sealed class CredentialCommandsTests : IDisposable
{
    private const string Canary = "sk-ant-CANARY-4e1f9b7d2c";
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    private Task<Processes.Result> Run(string? stdin, params string[] args) => Processes.Latchkey(_home.Path, stdin, args);

    private async Task AddApiKey(string name, string secret)
    {
        var added = await Run(secret + "\n", "add", name, "--upstream", "https://api.anthropic.com", "--header", "x-api-key", "--format", "{secret}", "--extra-header", "anthropic-version: 2023-06-01");
        Assert.True(added.ExitCode == 0, added.ToString());
    }

    [Fact]
    public async Task Add_ReplaceKeepSettings_ReplacesOnlyTheSecretKeepingHeaderFormatAndUpstream()
    {
        await AddApiKey("anthropic", Canary);

        var replaced = await Run(Canary + "-new\n", "add", "anthropic", "--replace", "--keep-settings");

        Assert.True(replaced.ExitCode == 0, replaced.ToString());
        Assert.Equal(Canary + "-new\n", (await Run(null, "token", "anthropic")).Stdout);
        using var list = JsonDocument.Parse((await Run(null, "list", "--json")).Stdout);
        var view = list.RootElement.EnumerateArray().Single();
        Assert.Equal("https://api.anthropic.com", view.GetProperty("upstream").GetString());
        Assert.Equal("x-api-key", view.GetProperty("injection").GetProperty("header").GetString());
        Assert.Equal("{secret}", view.GetProperty("injection").GetProperty("format").GetString());
        Assert.Contains("--replace --keep-settings", (await Run(null, "add", "anthropic")).Stderr, StringComparison.Ordinal); // no --upstream: the fix is named
        Assert.Equal(2, (await Run(Canary + "\n", "add", "anthropic", "--keep-settings")).ExitCode); // only with --replace
        Assert.Equal(2, (await Run(Canary + "\n", "add", "anthropic", "--replace", "--keep-settings", "--header", "Authorization")).ExitCode); // keeps, so sets nothing
        Assert.NotEqual(0, (await Run(Canary + "\n", "add", "missing", "--replace", "--keep-settings")).ExitCode);
    }

    [Fact]
    public async Task Add_SecretOnStdin_TokenPrintsExactlySecretAndNewline()
    {
        await AddApiKey("anthropic", Canary);

        var token = await Run(null, "token", "anthropic");

        Assert.Equal(0, token.ExitCode);
        Assert.Equal(Canary + "\n", token.Stdout);
        Assert.Equal(string.Empty, token.Stderr);
    }

    [Fact]
    public async Task Add_ThenEveryCommand_SecretNeverInAnyFileOrOutputAndModesArePrivate()
    {
        await AddApiKey("anthropic", Canary);
        var outputs = new List<Processes.Result>
        {
            await Run(null, "list"),
            await Run(null, "list", "--json"),
            await Run(null, "status"),
            await Run(null, "status", "anthropic", "--json"),
            await Run(null, "history", "anthropic"),
            await Run(null, "doctor"),
            await Run(Canary + "-2\n", "add", "anthropic", "--upstream", "https://api.anthropic.com", "--replace"),
        };

        Assert.All(outputs, o => Assert.DoesNotContain("CANARY", o.All, StringComparison.Ordinal));
        Assert.Equal(StoreHome.FolderMode, File.GetUnixFileMode(_home.Path));
        foreach (var file in Directory.GetFiles(_home.Path))
        {
            Assert.Equal(StoreHome.FileMode, File.GetUnixFileMode(file));
            var bytes = await File.ReadAllBytesAsync(file);
            Assert.Equal(-1, bytes.AsSpan().IndexOf("CANARY"u8));
            Assert.Equal(-1, bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes("CANARY")));
        }
    }

    [Fact]
    public async Task Token_UnknownName_Exits4AndSaysWhatToType()
    {
        var result = await Run(null, "token", "nope");

        Assert.Equal(4, result.ExitCode);
        Assert.Equal(string.Empty, result.Stdout);
        Assert.Contains("No credential is named 'nope'", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("latchkey add nope", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("add", "leaky", "--upstream", "https://api.example.com", Canary)]
    [InlineData("add", "leaky", "--upstream", "https://api.example.com", "--secret", Canary)]
    [InlineData("add", "leaky", "--upstream", "https://api.example.com", "--api-key=" + Canary)]
    public async Task Add_SecretOnCommandLine_RefusedExit2PointsAtStdinAndNeverEchoesIt(params string[] args)
    {
        var result = await Run(null, args);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("standard input", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("CANARY", result.All, StringComparison.Ordinal);
        Assert.Equal(4, (await Run(null, "token", "leaky")).ExitCode);
    }

    [Theory]
    [InlineData("http://api.example.com", "plain http")]
    [InlineData("ftp://api.example.com", "scheme")]
    public async Task Add_UnsafeUpstream_RefusedExit2NamingTheProblem(string upstream, string expected)
    {
        var result = await Run("secret\n", "add", "x", "--upstream", upstream);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Add_EmptyStdin_RefusedExit2()
    {
        var result = await Run(string.Empty, "add", "x", "--upstream", "https://api.example.com");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("standard input was empty", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Add_ExistingNameWithoutReplace_Exit1AndOldSecretKept()
    {
        await AddApiKey("a", "first");

        var second = await Run("second\n", "add", "a", "--upstream", "https://api.example.com");

        Assert.Equal(1, second.ExitCode);
        Assert.Contains("--replace", second.Stderr, StringComparison.Ordinal);
        Assert.Equal("first\n", (await Run(null, "token", "a")).Stdout);
    }

    [Fact]
    public async Task Restore_AfterReplace_BringsBackPreviousSecret()
    {
        await AddApiKey("a", "first");
        Assert.Equal(0, (await Run("second\n", "add", "a", "--upstream", "https://api.example.com", "--replace")).ExitCode);
        Assert.Equal("second\n", (await Run(null, "token", "a")).Stdout);

        var restored = await Run(null, "restore", "a", "--version", "1");

        Assert.True(restored.ExitCode == 0, restored.ToString());
        Assert.Equal("first\n", (await Run(null, "token", "a")).Stdout);
        var history = await Run(null, "history", "a", "--json");
        var versions = JsonDocument.Parse(history.Stdout).RootElement.EnumerateArray().Select(v => v.GetProperty("version").GetInt64());
        Assert.Equal([2L, 1L], versions);
    }

    [Fact]
    public async Task Remove_Existing_GoneAndSecondRemoveExits4()
    {
        await AddApiKey("a", "first");

        Assert.Equal(0, (await Run(null, "remove", "a")).ExitCode);
        Assert.Equal(4, (await Run(null, "remove", "a")).ExitCode);
        Assert.Equal(4, (await Run(null, "token", "a")).ExitCode);
    }

    [Fact]
    public async Task StatusJson_OneCredential_HasTheDocumentedContractFields()
    {
        await AddApiKey("anthropic", Canary);

        var result = await Run(null, "status", "--json");

        Assert.Equal(0, result.ExitCode);
        var item = Assert.Single(JsonDocument.Parse(result.Stdout).RootElement.EnumerateArray());
        Assert.Equal("anthropic", item.GetProperty("name").GetString());
        Assert.Equal("api-key", item.GetProperty("kind").GetString());
        Assert.Equal("ok", item.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, item.GetProperty("reason").ValueKind);
        Assert.Equal("https://api.anthropic.com", item.GetProperty("upstream").GetString());
        Assert.Equal(JsonValueKind.Array, item.GetProperty("scopes").GetProperty("granted").ValueKind);
        Assert.Equal(JsonValueKind.Null, item.GetProperty("expires_at").ValueKind);
        Assert.True(item.GetProperty("updated_at").GetDateTimeOffset() > DateTimeOffset.UnixEpoch);
        Assert.Equal("x-api-key", item.GetProperty("injection").GetProperty("header").GetString());
    }

    [Fact]
    public async Task Status_FlippedBytesInOneRow_QuarantinedWithReasonOthersWorkAndDoctorReportsIt()
    {
        await AddApiKey("a", "secret-a");
        await AddApiKey("b", "secret-b");
        await AddApiKey("c", "secret-c");
        FlipCiphertextByte("b");

        var status = await Run(null, "status", "b", "--json");
        var tokenA = await Run(null, "token", "a");
        var tokenB = await Run(null, "token", "b");
        var tokenC = await Run(null, "token", "c");
        var list = await Run(null, "list", "--json");
        var doctor = await Run(null, "doctor", "--json");

        Assert.Equal(3, status.ExitCode);
        var b = JsonDocument.Parse(status.Stdout).RootElement[0];
        Assert.Equal("quarantined", b.GetProperty("state").GetString());
        Assert.Equal("decrypt_failed", b.GetProperty("reason").GetProperty("code").GetString());
        Assert.Contains("latchkey restore b", b.GetProperty("reason").GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.Equal("secret-a\n", tokenA.Stdout);
        Assert.Equal("secret-c\n", tokenC.Stdout);
        Assert.Equal(3, tokenB.ExitCode);
        Assert.Contains("quarantined", tokenB.Stderr, StringComparison.Ordinal);
        Assert.Equal(3, JsonDocument.Parse(list.Stdout).RootElement.GetArrayLength());
        Assert.Equal(1, doctor.ExitCode);
        var finding = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("status").GetString() == "fail");
        Assert.Equal("record 'b'", finding.GetProperty("check").GetString());
        Assert.Contains("failed the integrity check", finding.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Doctor_HealthyStore_Exit0AndEveryCheckOk()
    {
        await AddApiKey("a", "secret-a");

        var doctor = await Run(null, "doctor", "--json");

        Assert.True(doctor.ExitCode == 0, doctor.ToString());
        var findings = JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray().ToList();
        Assert.All(findings, f => Assert.NotEqual("fail", f.GetProperty("status").GetString()));
        Assert.Contains(findings, f => f.GetProperty("check").GetString() == "database integrity");
    }

    [Fact]
    public async Task Doctor_HomeOpenToOthers_Exit1WithChmodFix()
    {
        await AddApiKey("a", "secret-a");
        File.SetUnixFileMode(_home.Path, StoreHome.FolderMode | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        var doctor = await Run(null, "doctor", "--json");
        var token = await Run(null, "token", "a");

        Assert.Equal(1, doctor.ExitCode);
        var finding = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("status").GetString() == "fail");
        Assert.StartsWith("chmod 700", finding.GetProperty("fix").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, token.ExitCode);
        Assert.Contains("chmod 700", token.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownArgument_NotEchoed_Exit2()
    {
        var result = await Run(null, "token", "a", Canary);

        Assert.Equal(2, result.ExitCode);
        Assert.DoesNotContain("CANARY", result.All, StringComparison.Ordinal);
    }

    private void FlipCiphertextByte(string name)
    {
        var db = Path.Combine(_home.Path, "latchkey.db");
        byte[] ciphertext;
        using (var connection = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            connection.Open();
            using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            checkpoint.ExecuteNonQuery();
            using var select = connection.CreateCommand();
            select.CommandText = "SELECT secret_ct FROM credential WHERE name = $n";
            select.Parameters.AddWithValue("$n", name);
            ciphertext = (byte[])select.ExecuteScalar()!;
        }

        var file = File.ReadAllBytes(db);
        var at = file.AsSpan().IndexOf(ciphertext);
        Assert.True(at >= 0);
        file[at + (ciphertext.Length / 2)] ^= 0xFF;
        File.WriteAllBytes(db, file);
    }
}
