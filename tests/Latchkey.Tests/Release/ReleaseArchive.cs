using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Latchkey.Tests.Release;

/// <summary>
/// The release archive for this machine (<c>artifacts/release/latchkey-VERSION-linux-x64.tar.gz</c>, from
/// <c>./build.sh release</c>), unpacked once into a temporary folder. <c>./test.sh</c> builds it from the tree under
/// test and sets <c>LATCHKEY_RELEASE_TEST=1</c>, so the suite always runs the release tests; with that variable set and
/// no archive, the test builds it itself. A bare <c>dotnet test</c> without an archive skips them and says why.
/// </summary>
internal static class ReleaseArchive
{
    private static readonly Lazy<Task<string>> Unpacked = new(UnpackAsync);

    public static string Rid => RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "linux-arm64" : "linux-x64";

    public static string Folder => Path.Combine(Processes.RepoRoot, "artifacts", "release");

    public static string? Find() =>
        Directory.Exists(Folder) ? Directory.GetFiles(Folder, $"latchkey-*-{Rid}.tar.gz").OrderBy(f => f, StringComparer.Ordinal).LastOrDefault() : null;

    /// <summary>Why the release tests cannot run here, or null.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the release test runs the Linux archive";
        }

        if (Find() is null && Environment.GetEnvironmentVariable("LATCHKEY_RELEASE_TEST") != "1")
        {
            return $"no release archive in artifacts/release for {Rid}: run ./build.sh release {Rid} first, or set LATCHKEY_RELEASE_TEST=1 to build it in the test";
        }

        return null;
    }

    /// <summary>The unpacked <c>latchkey</c> executable.</summary>
    public static Task<string> ExecutableAsync() => Unpacked.Value;

    private static async Task<string> UnpackAsync()
    {
        var archive = Find();
        if (archive is null)
        {
            var build = new ProcessStartInfo(Path.Combine(Processes.RepoRoot, "build.sh"), ["release", Rid])
            {
                WorkingDirectory = Processes.RepoRoot,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            var result = await Processes.Run(build, null);
            Assert.True(result.ExitCode == 0, $"./build.sh release {Rid} failed:\n{result.Stdout}\n{result.Stderr}");
            archive = Find() ?? throw new InvalidOperationException($"./build.sh release {Rid} made no archive:\n{result.Stdout}");
        }

        var folder = Directory.CreateTempSubdirectory("latchkey-release-").FullName;
        var tar = new ProcessStartInfo("tar", ["-xzf", archive, "-C", folder]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        var unpacked = await Processes.Run(tar, null);
        Assert.True(unpacked.ExitCode == 0, unpacked.Stderr);
        var top = Directory.GetDirectories(folder).Single();
        return Path.Combine(top, "latchkey");
    }

    /// <summary>
    /// A start for the release binary in a clean environment: nothing inherited (no <c>DOTNET_*</c>, no
    /// <c>PATH</c> with <c>dotnet</c> on it: an empty folder), only a home folder.
    /// </summary>
    public static ProcessStartInfo Clean(string exe, string home, string emptyPath, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(exe, args)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        CleanEnvironment(info, home, emptyPath);
        return info;
    }

    public static void CleanEnvironment(ProcessStartInfo info, string home, string emptyPath)
    {
        info.Environment.Clear();
        info.Environment["PATH"] = emptyPath;
        info.Environment["HOME"] = Path.GetDirectoryName(home)!;
        info.Environment["LATCHKEY_HOME"] = home;
        info.Environment["TMPDIR"] = Path.GetTempPath();
    }
}

/// <summary>A test of the release archive: skipped, with the reason, where <see cref="ReleaseArchive"/> has none.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ReleaseFactAttribute : FactAttribute
{
    public ReleaseFactAttribute()
    {
        if (ReleaseArchive.Unavailable() is { } why)
        {
            Skip = why;
        }
    }
}
