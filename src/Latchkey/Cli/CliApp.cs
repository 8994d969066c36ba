using System.CommandLine;
using System.CommandLine.Completions;
using Latchkey.Composition;
using Latchkey.Diagnostics;
using Latchkey.Local;
using Latchkey.Store;
using Latchkey.Tokens;

namespace Latchkey.Cli;

/// <summary>
/// The <c>latchkey</c> command tree. Parses, runs one command, and turns every failure into a message that says
/// what was wrong and what to type next, with a documented exit code (<see cref="ExitCodes"/>). The tree is put
/// together here, from what each command group builds (<c>Build</c>), in the order help lists it. Commands get their
/// services from the composition root (<see cref="Open(ParseResult)"/>) and only parse, call and print.
/// </summary>
internal sealed class CliApp(CliConsole console, TimeProvider time)
{
    /// <summary><c>--home PATH</c>: the home folder, for every command.</summary>
    public static readonly Option<string?> HomeOption = new("--home")
    {
        Description = "The home folder holding the store and its key (default: $LATCHKEY_HOME, else $XDG_DATA_HOME/latchkey, else ~/.local/share/latchkey).",
        Recursive = true,
    };

    /// <summary><c>--store sqlite|postgresql://...</c>: the store backend, for every command.</summary>
    public static readonly Option<string?> StoreOption = new("--store")
    {
        Description = $"The store: sqlite (default: latchkey.db in the home folder) or postgresql://USER@HOST:PORT/DATABASE for a shared one (default: ${StoreSelector.StoreVariable}). Never put a password here: use PGPASSWORD or ~/.pgpass.",
        Recursive = true,
    };

    public CliConsole Console { get; } = console;

    public TimeProvider Time { get; } = time;

    /// <summary>
    /// What <c>latchkey --version</c> prints: <c>latchkey VERSION (commit SHA)</c>, from the informational version the
    /// build stamps (<c>VERSION+SHA</c>: SourceLink's commit, or <c>SourceRevisionId</c> from <c>./build.sh release</c>),
    /// compiled in as a constant (<c>BuildInfo</c>, written by Latchkey.csproj) so that no reflection runs.
    /// </summary>
    public static string VersionLine
    {
        get
        {
            const string informational = BuildInfo.InformationalVersion;
            var plus = informational.IndexOf('+', StringComparison.Ordinal);
            return plus < 0
                ? $"latchkey {informational} (commit unknown)"
                : $"latchkey {informational[..plus]} (commit {informational[(plus + 1)..]})";
        }
    }

    public async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        if (args is ["--version"])
        {
            // Answered before the command tree is built: scripts and installers call it to check what is installed.
            Console.Out.WriteLine(VersionLine);
            return ExitCodes.Success;
        }

        if (TokenFastPath.TryMatch(args, out var tokenName, out var tokenHome))
        {
            // `latchkey token NAME` runs once per agent request (apiKeyHelper): skip building the command tree.
            using var signals = new CancelOnSignal();
            return await GuardAsync(() => CredentialCommands.PrintTokenAsync(this, null, tokenHome, tokenName, signals.Token));
        }

        var root = BuildRoot();
        var parse = root.Parse(args);
        if (root.Directives.OfType<SuggestDirective>().FirstOrDefault() is { } suggest && parse.GetResult(suggest) is not null)
        {
            // `latchkey "[suggest:POSITION]" "LINE"`: the shell completion scripts ask for completions (CompletionCommand).
            return await parse.InvokeAsync(new InvocationConfiguration { Output = Console.Out, Error = TextWriter.Null });
        }

        if (parse.UnmatchedTokens.Count > 0)
        {
            // Never echo unexpected arguments back: one of them may be a secret typed on the command line.
            var command = parse.CommandResult.Command;
            var path = command == root ? "latchkey" : $"latchkey {command.Name}";
            var message = command.Name == "add"
                ? new CliException(ExitCodes.Usage,
                    "latchkey add takes the secret from standard input or a hidden prompt, never from the command line (arguments show in 'ps' and shell history).",
                    "Pipe it in: 'latchkey add NAME --upstream URL < key.txt', or run the command without the secret to be prompted.")
                : new CliException(ExitCodes.Usage,
                    $"{path} got {parse.UnmatchedTokens.Count} unexpected argument(s); they are not repeated here in case one is a secret.",
                    $"See '{path} --help'. Secrets are read from standard input, never from arguments.");
            return Report(message);
        }

        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                Console.Error.WriteLine($"latchkey: {error.Message}");
            }

            var command = parse.CommandResult.Command;
            Console.Error.WriteLine($"  See '{(command == root ? "latchkey" : "latchkey " + command.Name)} --help'.");
            return ExitCodes.Usage;
        }

        return await GuardAsync(() => parse.InvokeAsync(new InvocationConfiguration
        {
            EnableDefaultExceptionHandler = false,
            Output = Console.Out,
            Error = Console.Error,
        }));
    }

    /// <summary>
    /// The composition root for one command (<see cref="LatchkeyServices"/>): the store named by <paramref name="store"/>
    /// (the <c>--store</c> value; <see langword="null"/> falls back to <c>LATCHKEY_STORE</c>, then SQLite in the home
    /// folder <paramref name="home"/>) with its key, and the token engine and OAuth client, built when first used.
    /// </summary>
    public LatchkeyServices Open(string? store, string? home) => LatchkeyServices.Open(store, StoreHome.Resolve(home), Time);

    /// <summary>The composition root for one command, over the store <c>--store</c> and <c>--home</c> choose.</summary>
    public LatchkeyServices Open(ParseResult parse) => Open(parse.GetValue(StoreOption), parse.GetValue(HomeOption));

    /// <summary>
    /// Makes <paramref name="action"/> the action of <paramref name="command"/>, run with the composition root that
    /// <c>--store</c> and <c>--home</c> choose (opened before <paramref name="action"/> runs, disposed after it); for
    /// commands that check nothing before opening the store. Returns <paramref name="command"/>.
    /// </summary>
    public Command WithServices(Command command, Func<ParseResult, LatchkeyServices, CancellationToken, Task<int>> action)
    {
        command.SetAction(async (parse, ct) =>
        {
            await using var services = Open(parse);
            return await action(parse, services, ct);
        });
        return command;
    }

    /// <summary>Runs a command, turning the failures a command can have into their message and exit code.</summary>
    private async Task<int> GuardAsync(Func<Task<int>> command)
    {
        try
        {
            return await command();
        }
        catch (CliException ex)
        {
            return Report(ex);
        }
        catch (ActionableException ex)
        {
            return Report(new CliException(ExitCodes.Failure, ex.Message, ex.Fix));
        }
        catch (StoreException ex)
        {
            Console.Error.WriteLine($"latchkey: {ex.Message}");
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("latchkey: cancelled.");
            return ExitCodes.Failure;
        }
    }

    private int Report(CliException ex)
    {
        Console.Error.WriteLine($"latchkey: {ex.Message}");
        if (ex.Fix is not null)
        {
            Console.Error.WriteLine($"  {ex.Fix}");
        }

        return ex.ExitCode;
    }

    private RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "Latchkey keeps AI coding agents' credentials in one crash-safe, encrypted store, and is the one thing that spends them.")
        {
            HomeOption,
            StoreOption,
        };
        Command[] commands =
        [
            .. CredentialCommands.Build(this),
            .. LoginCommands.Build(this),
            DoctorCommand.Build(this),
            StoreCommands.Build(this),
            ServeCommand.Build(this),
            KeyCommands.Build(this),
            MasterKeyCommand.Build(this),
            .. RunCommand.Build(this),
            AuditCommand.Build(this),
            UsageCommand.Build(this),
            SshCommand.Build(this),
            McpCommands.Build(this),
            DashboardCommand.Build(this),
            ServiceCommand.Build(this),
            CompletionCommand.Build(this),
        ];
        foreach (var command in commands)
        {
            root.Add(command);
        }

        foreach (var suggest in root.Directives.OfType<SuggestDirective>())
        {
            suggest.Action = new CompletionCommand.PrefixCompletionAction(suggest);
        }

        return root;
    }
}
