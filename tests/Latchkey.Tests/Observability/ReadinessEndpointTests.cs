using System.Net;
using System.Text.Json;

namespace Latchkey.Tests.Observability;

/// <summary>
/// <c>/readyz</c> on a real <c>latchkey serve</c>: ready only when the store answers and the master key unseals it,
/// while <c>/healthz</c> keeps saying the process is up. (The store going away is in <see cref="ReadinessOnPostgresTests"/>.)
/// </summary>
public sealed class ReadinessEndpointTests
{
    [Fact]
    public async Task Readyz_StoreAnswersAndKeyUnseals_200Ready()
    {
        await using var gateway = await GatewayProcess.StartAsync();

        using var response = await gateway.Http.GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ready", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Readyz_MasterKeyFileReplaced_503MasterKeyMismatchWhileHealthzStaysOk()
    {
        using var home = new TempHome();
        var add = await Processes.Latchkey(home.Path, "sk-ant-api03-READY\n", "add", "sealed", "--upstream", "https://api.example.com");
        Assert.True(add.ExitCode == 0, add.ToString());
        // Someone restores the wrong key file: the store still opens, but nothing in it can be unsealed.
        await File.WriteAllBytesAsync(Path.Combine(home.Path, "master.key"), System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await using var gateway = await GatewayProcess.StartAsync(home);

        using var ready = await gateway.Http.GetAsync("/readyz");
        using var health = await gateway.Http.GetAsync("/healthz");

        var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal("not_ready", body.GetProperty("status").GetString());
        Assert.Equal("master_key_mismatch", body.GetProperty("reason").GetString());
        Assert.NotNull(ready.Headers.RetryAfter);
        Assert.DoesNotContain(home.Path, body.ToString(), StringComparison.Ordinal); // the store's location is for the log
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Contains("master_key_mismatch", gateway.Log, StringComparison.Ordinal);
    }
}
