using System.Diagnostics;

namespace Latchkey.Tests.Cli;

/// <summary>
/// <c>latchkey completion bash|zsh|fish|pwsh</c>: the scripts, run in the real shells, complete commands and the
/// store's credential names by asking latchkey through System.CommandLine's <c>[suggest:POSITION]</c> directive.
/// </summary>
public sealed class CompletionCommandTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Fact]
    public async Task SuggestDirective_CompletesCommandsAndCredentialNames()
    {
        await AddAsync("anthropic", "openai", "anthropic-work");

        Assert.Equal(["token"], await SuggestAsync("latchkey tok"));
        Assert.Equal(["anthropic", "anthropic-work"], await SuggestAsync("latchkey token an"));
        Assert.Equal(["openai"], await SuggestAsync("latchkey run --credential op"));
        Assert.Equal(["install", "status", "uninstall"], (await SuggestAsync("latchkey service ")).Where(s => !s.StartsWith('-') && !s.StartsWith('/')).Order());
        Assert.Equal(["bash"], await SuggestAsync("latchkey completion ba"));

        // --home on the line being completed picks the store the names come from.
        using var other = new TempHome();
        var added = await Processes.Latchkey(other.Path, "sk-x\n", "add", "elsewhere", "--upstream", "https://example.com");
        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Equal(["elsewhere"], await SuggestAsync($"latchkey remove --home {other.Path} e"));
    }

    [Fact]
    public async Task SuggestDirective_NoStoreYet_CompletesNoNameAndCreatesNothing()
    {
        Assert.DoesNotContain(await SuggestAsync("latchkey token "), s => !s.StartsWith('-') && !s.StartsWith('/'));
        Assert.False(Directory.Exists(_home.Path), "a completion created the home folder");
    }

    [Fact]
    public async Task Bash_CompletesCredentialNames()
    {
        await AddAsync("anthropic", "openai");
        var script = await ScriptAsync("bash");
        var line = "latchkey token an";

        var result = await ShellAsync("bash", "-c", script + $"\nCOMP_LINE='{line}'; COMP_POINT={line.Length}; COMP_WORDS=('{Processes.LatchkeyExe}' token an); COMP_CWORD=2\n_latchkey_complete\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\ncomplete -p latchkey");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(["anthropic", "complete -o default -F _latchkey_complete latchkey"], result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Fish_CompletesCredentialNames()
    {
        Assert.True(OnPath("fish"), "fish is not installed: ./test.sh installs it (apt-get install fish)");
        await AddAsync("anthropic", "openai");
        var script = await ScriptAsync("fish");

        var result = await ShellAsync("fish", "--no-config", "-c", script + "\ncomplete -C 'latchkey token op'");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(["openai"], result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]));
    }

    [Fact]
    public async Task Zsh_ScriptParses()
    {
        Assert.True(OnPath("zsh"), "zsh is not installed: ./test.sh installs it (apt-get install zsh)");
        var result = await ShellAsync("zsh", "-n", "-c", await ScriptAsync("zsh"));
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Pwsh_RegistersANativeCompleterThatAsksTheSuggestDirective()
    {
        var script = await ScriptAsync("pwsh");
        Assert.Contains("Register-ArgumentCompleter -Native -CommandName latchkey", script, StringComparison.Ordinal);
        Assert.Contains("\"[suggest:$position]\"", script, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownShell_IsAUsageError()
    {
        var result = await Processes.Latchkey(_home.Path, null, "completion", "tcsh");
        Assert.Equal(2, result.ExitCode);
    }

    private async Task AddAsync(params string[] names)
    {
        foreach (var name in names)
        {
            var added = await Processes.Latchkey(_home.Path, "sk-" + name + "\n", "add", name, "--upstream", "https://example.com");
            Assert.True(added.ExitCode == 0, added.ToString());
        }
    }

    private async Task<string[]> SuggestAsync(string line)
    {
        var result = await Processes.Latchkey(_home.Path, null, $"[suggest:{line.Length}]", line);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    private async Task<string> ScriptAsync(string shell)
    {
        var result = await Processes.Latchkey(_home.Path, null, "completion", shell);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.Stdout;
    }

    private Task<Processes.Result> ShellAsync(string shell, params string[] args)
    {
        var info = Processes.StartInfo(shell, _home.Path, args);
        info.Environment["PATH"] = Path.GetDirectoryName(Processes.LatchkeyExe) + Path.PathSeparator + info.Environment["PATH"]; // 'latchkey' is this build
        return Processes.Run(info, null);
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, program)));
}
