namespace Latchkey.Cli;

/// <summary>The documented exit codes (docs/cli.md). Scripts depend on them: never renumber.</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int NotUsable = 3;
    public const int NotFound = 4;
}
