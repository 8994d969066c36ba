using Latchkey.Ssh;

namespace Latchkey.Tests.Ssh;

/// <summary>Splitting <c>latchkey ssh</c>'s words the way OpenSSH's getopt does.</summary>
public sealed class SshArgumentsTests
{
    [Fact]
    public void Parse_OptionsWithValuesBundledFlagsAndACommand_SplitsAtTheHost()
    {
        var (args, problem) = SshArguments.Parse(["-p", "2222", "-i/k/id", "-vvt", "-F", "cfg", "-o", "User=me", "devbox", "claude", "--resume"]);

        Assert.Null(problem);
        Assert.Equal(["-p", "2222", "-i/k/id", "-vvt", "-F", "cfg", "-o", "User=me"], args!.Options);
        Assert.Equal("devbox", args.Destination);
        Assert.Equal(["claude", "--resume"], args.Command);
        Assert.Equal("cfg", args.ConfigFile);
        Assert.Equal('t', args.PseudoTerminal);
    }

    [Fact]
    public void Parse_HostOnly_IsAnInteractiveSession()
    {
        var (args, _) = SshArguments.Parse(["me@devbox"]);

        Assert.Equal("me@devbox", args!.Destination);
        Assert.Empty(args.Command);
        Assert.Null(args.PseudoTerminal);
    }

    [Theory]
    [InlineData("-f", "background")]
    [InlineData("-Nv", "no remote command")]
    [InlineData("-Wlocalhost:22", "-W")]
    [InlineData("-Z", "not an ssh option")]
    [InlineData("-p", "needs a value")]
    public void Parse_OptionThatCannotWork_SaysWhich(string option, string said)
    {
        var (args, problem) = SshArguments.Parse([option]);

        Assert.Null(args);
        Assert.Contains(said, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NoHost_SaysSo()
    {
        var (args, problem) = SshArguments.Parse(["-4", "-p", "22"]);

        Assert.Null(args);
        Assert.Contains("No host", problem, StringComparison.Ordinal);
    }
}
