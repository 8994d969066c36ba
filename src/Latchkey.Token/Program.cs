using System.Runtime.InteropServices;
using System.Text;
using Latchkey.Composition;
using Latchkey.Store;
using Latchkey.Tokens;

namespace Latchkey;

/// <summary>
/// <c>latchkey-token token NAME</c>: prints the credential's usable token and a newline, refreshing it first when it
/// is due (through the same token engine, so exactly once across processes). Anything it does not serve itself it
/// hands to the full <c>latchkey</c> with the same arguments, by <c>execv</c>, so that every message and exit code
/// comes from one place.
/// </summary>
/// <remarks>
/// <para><b>Security.</b> The token goes to standard output only; nothing is logged. Arguments are passed on
/// unchanged and never printed.</para>
/// <para><b>Which <c>latchkey</c>.</b> The one beside this program; <c>LATCHKEY_FULL_EXE</c> names another (tests).</para>
/// </remarks>
internal static partial class Program
{
    /// <summary>Names the full <c>latchkey</c> executable when it is not beside this program.</summary>
    public const string FullExeVariable = "LATCHKEY_FULL_EXE";

    public static async Task<int> Main(string[] args)
    {
        if (TokenFastPath.TryMatch(args, out var name, out var home) && await TryServeAsync(name, home) is { } token)
        {
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(Encoding.UTF8.GetBytes(token + "\n"));
            return 0;
        }

        return ExecFullTool(args);
    }

    /// <summary>The usable token, or null when the full tool should answer (it explains every other outcome).</summary>
    private static async Task<string?> TryServeAsync(string name, string? home)
    {
        try
        {
            // The same composition root as the full tool: the store and its key, and the token engine, whose OAuth
            // client is built only if a refresh is due.
            await using var services = LatchkeyServices.Open(null, StoreHome.Resolve(home), TimeProvider.System);
            var result = await services.Engine.GetAccessTokenAsync(name, null, CancellationToken.None);
            return result.Status == TokenStatus.Ok ? result.AccessToken : null;
        }
        catch (Exception ex) when (ex is StoreException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return null; // the full tool opens the store again and says what is wrong and what to do
        }
    }

    private static int ExecFullTool(string[] args)
    {
        var full = Environment.GetEnvironmentVariable(FullExeVariable) is { Length: > 0 } named
            ? named
            : Path.Combine(AppContext.BaseDirectory, "latchkey");
        if (!File.Exists(full))
        {
            Console.Error.WriteLine($"latchkey-token: the full latchkey is not at {full}.");
            Console.Error.WriteLine("  Run ./latchkey once to build it, or set " + FullExeVariable + " to its path.");
            return 1;
        }

        var argv = new IntPtr[args.Length + 2];
        try
        {
            argv[0] = Marshal.StringToCoTaskMemUTF8(full);
            for (var i = 0; i < args.Length; i++)
            {
                argv[i + 1] = Marshal.StringToCoTaskMemUTF8(args[i]);
            }

            _ = Execv(argv[0], argv); // returns only on failure
            Console.Error.WriteLine($"latchkey-token: could not start {full} (errno {Marshal.GetLastPInvokeError()}).");
            Console.Error.WriteLine("  Check that it is executable, or run ./latchkey to rebuild it.");
            return 1;
        }
        finally
        {
            foreach (var p in argv)
            {
                Marshal.FreeCoTaskMem(p);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "execv", SetLastError = true)]
    private static partial int Execv(IntPtr path, IntPtr[] argv);
}
