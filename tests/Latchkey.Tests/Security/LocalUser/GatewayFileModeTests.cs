using System.Diagnostics;
using Latchkey.Tests.Security.KeyHolder;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Another user on the machine cannot read files that are 0600 in a 0700 folder. After a real <c>latchkey run</c>
/// starts the background gateway, from a shell whose umask would make new files world-readable (000), every file in
/// the home folder is 0600 and the folder is 0700: <c>gateway.json</c> (the gateway's URL and pid),
/// <c>gateway.log</c> (its log), the Unix socket (the gateway itself), the store and the master key.
/// </summary>
public sealed class GatewayFileModeTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    [Fact]
    public async Task Run_StartsTheGatewayUnderUmask000_EveryFileInTheHomeIs0600AndTheHome0700()
    {
        using var home = new TempHome();
        var added = await Processes.Latchkey(home.Path, "sk-ant-api03-stored\n", "add", "provider", "--upstream", "http://127.0.0.1:9");
        Assert.True(added.ExitCode == 0, added.ToString());
        var info = Processes.StartInfo("sh", home.Path, ["-c", "umask 000; exec \"$0\" \"$@\"", Processes.LatchkeyExe, "run", "--credential", "provider", "--", "true"]);
        info.Environment["LATCHKEY_LISTEN"] = "127.0.0.1:0";

        try
        {
            var run = await Processes.Run(info, null);

            Assert.True(run.ExitCode == 0, run.ToString());
            var files = Directory.GetFileSystemEntries(home.Path).Select(Path.GetFileName).ToList();
            Assert.Contains("gateway.json", files);
            Assert.Contains("gateway.log", files);
            Assert.Contains("gateway.sock", files);
            Assert.Equal(PrivateFolder, File.GetUnixFileMode(home.Path));
            Assert.All(Directory.GetFileSystemEntries(home.Path, "*", SearchOption.AllDirectories), path =>
                Assert.True(File.GetUnixFileMode(path) == (Directory.Exists(path) ? PrivateFolder : Private),
                    $"{Path.GetRelativePath(home.Path, path)} is {Convert.ToString((int)File.GetUnixFileMode(path), 8)}"));
        }
        finally
        {
            await AgentEnvironmentTests.StopGatewayAsync(home);
        }
    }
}
