using System.Net;
using System.Text.Json;
using Latchkey.Store;

namespace Latchkey.Tests.Observability;

/// <summary>
/// <c>/readyz</c> of a gateway on PostgreSQL while the database goes away and comes back: not ready while it is
/// gone (saying only <c>store_unavailable</c>), ready again once it answers, and <c>/healthz</c> up throughout.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class ReadinessOnPostgresTests(PostgresServer server)
{
    [Fact]
    public async Task Readyz_PostgresStoppedThenStarted_503StoreUnavailableThen200()
    {
        var url = await server.CreateDatabaseAsync();
        var database = url[(url.LastIndexOf('/') + 1)..];
        await using var gateway = await GatewayProcess.StartAsync(null, new Dictionary<string, string> { [StoreSelector.StoreVariable] = url });
        using (var before = await gateway.Http.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await server.StopAsync();
        try
        {
            using var down = await RealTime.UntilAsync(() => gateway.Http.GetAsync("/readyz"), r => r.StatusCode == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(20), discard: r => r.Dispose());
            var body = await down.Content.ReadAsStringAsync();
            using var health = await gateway.Http.GetAsync("/healthz");

            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            Assert.Equal("store_unavailable", JsonDocument.Parse(body).RootElement.GetProperty("reason").GetString());
            foreach (var detail in new[] { database, "127.0.0.1", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "postgresql://" })
            {
                Assert.DoesNotContain(detail, body, StringComparison.Ordinal);
            }

            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        finally
        {
            await server.StartAsync();
        }

        using var back = await RealTime.UntilAsync(() => gateway.Http.GetAsync("/readyz"), r => r.StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(30), discard: r => r.Dispose());
        Assert.Equal(HttpStatusCode.OK, back.StatusCode);
    }
}
