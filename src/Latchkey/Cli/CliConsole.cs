namespace Latchkey.Cli;

/// <summary>The streams a command uses, so tests can run commands in-process.</summary>
/// <param name="Out">Results: what a script reads. A secret is written here only by <c>latchkey token</c>.</param>
/// <param name="Error">Messages for a person: errors, prompts, progress.</param>
/// <param name="In">Standard input, where secrets come from.</param>
/// <param name="InputIsTerminal">Whether standard input is an interactive terminal (then secrets are prompted for without echo).</param>
/// <param name="OutputIsTerminal">Whether standard output is an interactive terminal.</param>
internal sealed record CliConsole(TextWriter Out, TextWriter Error, TextReader In, bool InputIsTerminal, bool OutputIsTerminal)
{
    public static CliConsole System() => new(
        Console.Out, Console.Error, Console.In, !Console.IsInputRedirected, !Console.IsOutputRedirected);
}
