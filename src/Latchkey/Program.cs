using Latchkey.Cli;

namespace Latchkey;

internal static class Program
{
    // A gateway started in the background by 'latchkey run' gets its output file from its starter (DetachedProcess):
    // the runtime duplicates descriptors 0-2 before Main runs, so redirecting them here would be too late.
    public static Task<int> Main(string[] args)
    {
        return new CliApp(CliConsole.System(), TimeProvider.System).RunAsync(args);
    }
}
