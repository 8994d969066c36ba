using Latchkey.Cli;

namespace Latchkey;

internal static class Program
{
    public static Task<int> Main(string[] args)
    {
        // A gateway started in the background by 'latchkey run' sends its output to gateway.log. This must happen
        // before anything opens the console: .NET duplicates descriptors 1 and 2 when it does, and a duplicate of
        // the starter's pipe would keep that pipe open for as long as the gateway runs.
        if (Environment.GetEnvironmentVariable(GatewayLocator.LogVariable) is { Length: > 0 } log)
        {
            NativeMethods.RedirectOutputTo(log);
        }

        return new CliApp(CliConsole.System(), TimeProvider.System).RunAsync(args);
    }
}
