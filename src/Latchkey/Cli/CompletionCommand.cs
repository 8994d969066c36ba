using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using Latchkey.Store;

namespace Latchkey.Cli;

/// <summary>
/// <c>latchkey completion bash|zsh|fish|pwsh</c>: prints a script that makes the shell complete latchkey's
/// commands, options and credential names. The script asks latchkey itself, through System.CommandLine's
/// <c>[suggest:POSITION]</c> directive (<see cref="SuggestDirective"/>): <c>latchkey "[suggest:14]" "latchkey tok"</c>
/// prints one completion a line. Nothing else to install (no <c>dotnet-suggest</c>).
/// </summary>
internal static class CompletionCommand
{
    public static readonly string[] Shells = ["bash", "zsh", "fish", "pwsh"];

    public static Command Build(CliApp app)
    {
        var shell = new Argument<string>("SHELL") { Description = "bash, zsh, fish or pwsh." };
        shell.AcceptOnlyFromAmong(Shells);
        var command = new Command("completion", "Print a shell completion script: commands, options and credential names. E.g. add 'source <(latchkey completion bash)' to ~/.bashrc.") { shell };
        command.SetAction(parse =>
        {
            app.Console.Out.Write(Script(parse.GetValue(shell)!));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The <c>[suggest:POSITION] "LINE"</c> directive's action: System.CommandLine's own completions for LINE at
    /// POSITION (as its <c>CompletionAction</c> computes them), keeping those that start with the word being
    /// completed. Its own action keeps every completion that merely contains the word ('--help' for 'e'), which
    /// leaves bash and zsh with no common prefix to insert.
    /// </summary>
    public sealed class PrefixCompletionAction(SuggestDirective directive) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var line = parseResult.Tokens.LastOrDefault(t => t.Type != TokenType.Directive)?.Value ?? string.Empty;
            var value = parseResult.GetResult(directive)?.Values.SingleOrDefault();
            var position = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? Math.Min(p, line.Length) : line.Length;
            line = line[..position]; // the scripts send the line up to the cursor; what follows it does not change what fits there
            var completing = parseResult.RootCommandResult.Command.Parse(line, parseResult.Configuration);
            var word = completing.GetCompletionContext().WordToComplete;
            var output = parseResult.InvocationConfiguration.Output;
            foreach (var completion in completing.GetCompletions(position))
            {
                var text = (completion.InsertText ?? completion.Label).ReplaceLineEndings(" ").Replace('\t', ' ');
                if (text.StartsWith(word, StringComparison.Ordinal))
                {
                    output.WriteLine(text);
                }
            }

            return ExitCodes.Success;
        }
    }

    /// <summary>Makes an argument or option complete with the store's credential names.</summary>
    public static void CompleteCredentialNames(List<Func<CompletionContext, IEnumerable<CompletionItem>>> sources) => sources.Add(CredentialNames);

    /// <summary>
    /// The names in the SQLite store that <c>--home</c> on the line being completed chooses (else the environment's),
    /// that start with the word being completed. A completion runs on every Tab, so it only reads: a read-only
    /// connection without the master key (<see cref="SqliteCredentialStore.ReadNames"/>), never a home folder, a key,
    /// a migration or a keychain prompt, and only names the store would accept (a rewritten row's text never reaches
    /// the shell line). A PostgreSQL store (<c>--store</c> or <c>LATCHKEY_STORE</c>) completes no names: asking a
    /// server over the network on every Tab is not a completion's job. Nothing is printed on a failure.
    /// </summary>
    private static IEnumerable<CompletionItem> CredentialNames(CompletionContext context)
    {
        try
        {
            var parse = context.ParseResult;
            if (StoreSelector.Choose(parse.GetValue(CliApp.StoreOption)).Postgres is not null)
            {
                return [];
            }

            var home = StoreHome.Resolve(parse.GetValue(CliApp.HomeOption));
            return SqliteCredentialStore.ReadNames(home)
                .Where(n => n.StartsWith(context.WordToComplete, StringComparison.Ordinal))
                .Select(n => new CompletionItem(n, detail: "credential"))
                .ToList();
        }
        catch (Exception)
        {
            return []; // a completion shows nothing rather than an error in the middle of the user's line
        }
    }

    public static string Script(string shell) => shell switch
    {
        "bash" => """
            # latchkey completion for bash. Load it with: source <(latchkey completion bash)   (e.g. in ~/.bashrc)
            _latchkey_complete() {
                local IFS=$'\n' exe="${COMP_WORDS[0]/#\~/$HOME}"
                local line="${COMP_LINE:0:COMP_POINT}"
                COMPREPLY=($("$exe" "[suggest:${#line}]" "$line" 2>/dev/null))
            }
            complete -o default -F _latchkey_complete latchkey

            """,
        "zsh" => """
            # latchkey completion for zsh. Load it with: source <(latchkey completion zsh)   (e.g. in ~/.zshrc)
            (( $+functions[compdef] )) || { autoload -Uz compinit && compinit; }
            _latchkey() {
                local exe="${~words[1]}" line="${(j: :)words[1,CURRENT]}"
                local -a items
                items=("${(@f)$("$exe" "[suggest:${#line}]" "$line" 2>/dev/null)}")
                items=(${items:#})
                (( ${#items} )) && compadd -a items || _files
            }
            compdef _latchkey latchkey

            """,
        "fish" => """
            # latchkey completion for fish. Load it with: latchkey completion fish | source   (or save it as ~/.config/fish/completions/latchkey.fish)
            function __latchkey_complete
                set -l line (commandline -cp)
                set -l exe (commandline -opc)[1]
                $exe "[suggest:"(string length -- "$line")"]" "$line" 2>/dev/null
            end
            complete -c latchkey -f -a '(__latchkey_complete)'

            """,
        "pwsh" => """
            # latchkey completion for PowerShell. Load it with: latchkey completion pwsh | Out-String | Invoke-Expression   (e.g. in $PROFILE)
            Register-ArgumentCompleter -Native -CommandName latchkey -ScriptBlock {
                param($wordToComplete, $commandAst, $cursorPosition)
                $line = $commandAst.ToString()
                $position = $cursorPosition - $commandAst.Extent.StartOffset
                if ($position -gt $line.Length) { $line = $line.PadRight($position) }
                $exe = $commandAst.CommandElements[0].ToString()
                & $exe "[suggest:$position]" $line 2>$null | ForEach-Object {
                    [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
                }
            }

            """,
        _ => throw new ArgumentOutOfRangeException(nameof(shell), shell, "not a shell latchkey completes for"),
    };
}
