using Latchkey.Cli;

namespace Latchkey.Tests.Cli;

/// <summary>What <c>latchkey run</c> puts on the agent's command line: nothing, except the provider overrides Codex needs.</summary>
public sealed class RunCommandAgentArgumentsTests
{
    private static readonly RunCommand.Plan OpenAi = new("openai", "/c/openai", "openai", false);

    [Fact]
    public void AgentArguments_CodexOnAnOpenAiRoute_ProviderOverridesFirstKeyOnlyNamed()
    {
        var argv = RunCommand.AgentArguments(["/opt/bin/codex", "exec", "--skip-git-repo-check", "hi"], OpenAi, "http://127.0.0.1:7400");

        Assert.Equal("/opt/bin/codex", argv[0]);
        Assert.Equal(["-c", "model_provider=\"latchkey\"", "-c"], argv[1..4]);
        Assert.Contains("base_url = \"http://127.0.0.1:7400/c/openai/v1\"", argv[4], StringComparison.Ordinal);
        Assert.Contains("env_key = \"OPENAI_API_KEY\"", argv[4], StringComparison.Ordinal);
        Assert.Contains("wire_api = \"responses\"", argv[4], StringComparison.Ordinal);
        Assert.Equal(["exec", "--skip-git-repo-check", "hi"], argv[5..]);
        Assert.DoesNotContain(argv, a => a.Contains("lk_", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("claude", "openai")]
    [InlineData("codex", "anthropic")]
    [InlineData("curl", "openai")]
    public void AgentArguments_AnyOtherAgentOrRoute_Unchanged(string program, string api)
    {
        string[] argv = [program, "--flag"];

        Assert.Same(argv, RunCommand.AgentArguments(argv, OpenAi with { Api = api }, "http://127.0.0.1:7400"));
    }
}
