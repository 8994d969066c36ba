namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// Shell completion pastes what latchkey prints into the user's command line. Someone who can write the database
/// renames a record to shell code and terminal escapes; one Tab must not offer it, and completing must not create,
/// migrate or seal anything.
/// </summary>
public sealed class CompletionNameTests
{
    [Fact]
    public async Task Suggest_RecordRenamedToShellCodeInTheDatabase_NeverOfferedAndTheStoreIsUnchanged()
    {
        await using var store = await WritableStore.CreateAsync("sqlite", null!);
        var added = await store.Cli("sk-one\n", "add", "fine", "--upstream", "https://example.com");
        Assert.True(added.ExitCode == 0, added.ToString());
        added = await store.Cli("sk-two\n", "add", "victim", "--upstream", "https://example.com");
        Assert.True(added.ExitCode == 0, added.ToString());
        var marker = Path.Combine(store.Home.Path, "pwned");
        await store.TamperAsync($"UPDATE credential SET name = 'f$(touch {marker})' || char(27) || '[31m' WHERE name = 'victim'");
        var before = Snapshot(store.Home.Path);

        const string line = "latchkey token f";
        var result = await store.Cli(null, $"[suggest:{line.Length}]", line);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(["fine"], result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain('\u001b', result.Stdout);
        Assert.False(File.Exists(marker));
        Assert.Equal(before, Snapshot(store.Home.Path));
    }

    [Fact]
    public async Task Suggest_PostgresStoreOnTheLine_CompletesNoNameAndCreatesNoHomeOrKey()
    {
        using var home = new TempHome();
        const string line = "latchkey token --store postgresql://nobody@127.0.0.1:9/none ";
        var result = await Processes.Latchkey(home.Path, null, $"[suggest:{line.Length}]", line);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.False(Directory.Exists(home.Path), "a completion created the home folder (and with it a master key)");
    }

    /// <summary>
    /// Every file in the home with its length and last write: anything created, migrated or sealed shows. SQLite's
    /// own write-ahead log and shared-memory index are left out: any reader of a WAL database opens them.
    /// </summary>
    private static string[] Snapshot(string home) =>
        Directory.GetFiles(home, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith("-wal", StringComparison.Ordinal) && !f.EndsWith("-shm", StringComparison.Ordinal))
            .Select(f => new FileInfo(f))
            .Select(f => $"{Path.GetRelativePath(home, f.FullName)} {f.Length} {f.LastWriteTimeUtc.Ticks}")
            .Order(StringComparer.Ordinal)
            .ToArray();
}
