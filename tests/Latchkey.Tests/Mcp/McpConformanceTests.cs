using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Latchkey.Tests.Mcp;

/// <summary>
/// The MCP conformance suite (npm @modelcontextprotocol/conformance, pinned in tests/peers) run against Latchkey as
/// a client: for every auth scenario the suite starts its own authorization server and MCP server, and
/// tests/conformance/adapter.sh signs in with <c>latchkey mcp add</c> and talks through <c>latchkey mcp stdio</c> with
/// the SDK's MCP client. The expected failures, each with its reason, are in tests/conformance/baseline.yml and
/// docs/conformance.md; a baselined scenario that starts passing fails the run.
/// </summary>
public sealed partial class McpConformanceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ConformanceSuite_AuthScenarios_PassExceptTheBaselinedOnes()
    {
        var root = Processes.RepoRoot;
        var results = Directory.CreateTempSubdirectory("latchkey-conformance-").FullName;
        try
        {
            var info = new ProcessStartInfo("npx") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false, WorkingDirectory = results };
            foreach (var a in new[]
            {
                "--prefix", Path.Combine(root, "tests", "peers"), "conformance", "client", "--suite", "auth",
                "--command", Path.Combine(root, "tests", "conformance", "adapter.sh"),
                "--expected-failures", Path.Combine(root, "tests", "conformance", "baseline.yml"),
                "--timeout", "90000", "-o", results,
            })
            {
                info.ArgumentList.Add(a);
            }

            info.Environment["LATCHKEY_EXE"] = Processes.LatchkeyExe;
            info.Environment["LATCHKEY_TEST_BROWSER_EXE"] = Processes.TestBrowserExe;
            info.Environment["NO_COLOR"] = "1";
            using var process = Process.Start(info)!;
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            var text = Ansi().Replace(await stdout + await stderr, string.Empty);
            var summary = text.Contains("=== SUITE SUMMARY ===", StringComparison.Ordinal) ? text[text.IndexOf("=== SUITE SUMMARY ===", StringComparison.Ordinal)..] : text;
            output.WriteLine(summary);
            Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{summary}");
            foreach (var scenario in new[] { "auth/metadata-default", "auth/metadata-var1", "auth/basic-cimd", "auth/scope-from-www-authenticate", "auth/scope-from-scopes-supported", "auth/scope-omitted-when-undefined", "auth/scope-step-up", "auth/scope-retry-limit", "auth/token-endpoint-auth-basic", "auth/token-endpoint-auth-post", "auth/token-endpoint-auth-none", "auth/resource-mismatch", "auth/pre-registration" })
            {
                Assert.Matches($@"✓ {Regex.Escape(scenario)}: \d+ passed, 0 failed", summary);
            }
        }
        finally
        {
            Directory.Delete(results, recursive: true);
        }
    }

    [GeneratedRegex(@"\x1b\[[0-9;]*m")]
    private static partial Regex Ansi();
}
