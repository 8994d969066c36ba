using System.Globalization;
using System.Net;
using System.Text.Json;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Npgsql;

namespace Latchkey.Tests.Security.Unauthenticated;

/// <summary>
/// A caller with no valid key reaches the gateway while its PostgreSQL store is down. The 503 it gets must say only
/// that the store is unavailable: the database's host, port, user, name and password are for the gateway's log.
/// </summary>
[Collection(PostgresTests.Name)]
public sealed class StoreUnavailableTests(PostgresServer server)
{
    [Fact]
    public async Task Gateway_PostgresStopped_503NamesNoHostUserDatabaseOrPassword()
    {
        var adminUrl = await server.CreateDatabaseAsync();
        var database = adminUrl[(adminUrl.LastIndexOf('/') + 1)..];
        var role = $"lk_owner_{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}";
        const string password = "Pw-UNAUTH-d41c9e";
        await using (var connection = new NpgsqlConnection(server.ConnectionStringFor(adminUrl)))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE ROLE {role} LOGIN PASSWORD '{password}'; ALTER DATABASE {database} OWNER TO {role}", connection);
            await command.ExecuteNonQueryAsync();
        }

        var port = server.Port.ToString(CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string> { [StoreSelector.StoreVariable] = $"postgresql://{role}:{password}@127.0.0.1:{port}/{database}" };
        using var home = new TempHome();
        await using var gateway = await GatewayProcess.StartAsync(home, environment);
        await gateway.AddApiKeyAsync("api", "https://api.example.com", "sk-UNAUTH-store-5e0a");
        var realKey = await gateway.CreateKeyAsync("agent", "api");
        var madeUpKey = "lk_abcdefghijkl_" + new string('A', 43);

        await server.StopAsync();
        try
        {
            foreach (var key in new[] { madeUpKey, realKey })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/c/api/v1/models");
                request.Headers.Add("x-api-key", key);
                using var response = await gateway.Http.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                var headers = string.Join('\n', response.Headers.Concat(response.Content.Headers).Select(h => h.Key + ": " + string.Join(", ", h.Value)));

                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.Equal("store_unavailable", JsonDocument.Parse(body).RootElement.GetProperty("latchkey").GetProperty("reason").GetString());
                Assert.NotNull(response.Headers.RetryAfter);
                foreach (var secretish in new[] { role, password, database, "127.0.0.1", port, "postgresql://", home.Path })
                {
                    Assert.DoesNotContain(secretish, body + "\n" + headers, StringComparison.Ordinal);
                }
            }

            Assert.Contains(database, gateway.Log, StringComparison.Ordinal); // the details are in the gateway's log
            Assert.DoesNotContain(password, gateway.Log, StringComparison.Ordinal);
        }
        finally
        {
            await server.StartAsync();
        }
    }
}
