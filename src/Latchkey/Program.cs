using Latchkey.Cli;

namespace Latchkey;

internal static class Program
{
    public static Task<int> Main(string[] args) =>
        new CliApp(CliConsole.System(), TimeProvider.System).RunAsync(args);
}
