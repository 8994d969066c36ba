using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Latchkey.Testing;

/// <summary>Runs the real executables as OS processes (their paths are written into this assembly at build time).</summary>
internal static class Processes
{
    public static string LatchkeyExe { get; } = Metadata("LatchkeyExe");

    /// <summary>The native-token program (<c>src/Latchkey.Token</c>), here as its plain JIT build.</summary>
    public static string LatchkeyTokenExe { get; } = Metadata("LatchkeyTokenExe");

    public static string StoreDriverExe { get; } = Metadata("StoreDriverExe");

    /// <summary>The headless cookie-jar browser latchkey runs through <c>LATCHKEY_BROWSER</c> in sign-in tests.</summary>
    public static string TestBrowserExe { get; } = Metadata("TestBrowserExe");

    /// <summary>The repository's root folder (for the test peers under <c>tests/peers</c>).</summary>
    public static string RepoRoot { get; } = Metadata("RepoRoot");

    private static string Metadata(string key)
    {
        var path = typeof(Processes).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        return Path.GetFullPath(path);
    }

    public static ProcessStartInfo StartInfo(string exe, string home, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(exe)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["LATCHKEY_HOME"] = home;
        info.Environment.Remove("XDG_DATA_HOME");
        return info;
    }

    /// <summary>Runs <c>latchkey ARGS</c> with <paramref name="stdin"/> piped in, and waits for it.</summary>
    public static Task<Result> Latchkey(string home, string? stdin, params string[] args) =>
        Latchkey(home, stdin, new Dictionary<string, string>(), args);

    /// <summary>Runs <c>latchkey ARGS</c> with extra environment variables.</summary>
    public static Task<Result> Latchkey(string home, string? stdin, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = StartInfo(LatchkeyExe, home, args);
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return Run(info, stdin);
    }

    /// <summary>Runs the program <paramref name="info"/> describes with <paramref name="stdin"/> piped in, and waits (at most 60 s) for it to exit and close its output.</summary>
    public static async Task<Result> Run(ProcessStartInfo info, string? stdin)
    {
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return new Result(process.ExitCode, await stdout.WaitAsync(timeout.Token), await stderr.WaitAsync(timeout.Token)); // a child that keeps the pipes open does not hang the test
    }

    internal sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string All => Stdout + Stderr;

        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
    }
}
