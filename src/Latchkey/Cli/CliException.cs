namespace Latchkey.Cli;

/// <summary>
/// A command cannot do what was asked. Carries the exit code, a sentence saying what was wrong, and what to type
/// next. Never carries secret material.
/// </summary>
internal sealed class CliException(int exitCode, string message, string? fix = null) : Exception(message)
{
    public int ExitCode { get; } = exitCode;

    public string? Fix { get; } = fix;

    public static CliException NotFound(string name) => new(ExitCodes.NotFound,
        $"No credential is named '{name}'.",
        $"'latchkey list' shows the names; 'latchkey add {name} --upstream URL' adds one.");
}
