using System.Text.Json;
using Latchkey.Store;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// Someone on the network path to the team's PostgreSQL can pose as the database unless the connection verifies the
/// server's certificate. Row seals catch the rows they change, but not replays or a withheld store, so
/// <c>serve</c> and <c>doctor</c> say so whenever a store on another machine is used without
/// <c>sslmode=verify-full</c> (or <c>verify-ca</c>).
/// </summary>
public sealed class StoreConnectionTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Theory]
    [InlineData("postgresql://lk@db.invalid:5432/latchkey?connect_timeout=2", true)]
    [InlineData("postgresql://lk@db.invalid:5432/latchkey?sslmode=require&connect_timeout=2", true)]
    [InlineData("postgresql://lk@db.invalid:5432/latchkey?sslmode=verify-full&connect_timeout=2", false)]
    public async Task ServeAndDoctor_StoreOnAnotherMachine_WarnUnlessTheCertificateIsVerified(string url, bool warns)
    {
        var environment = new Dictionary<string, string> { [StoreSelector.StoreVariable] = url };

        var serve = await Processes.Latchkey(_home.Path, null, environment, "serve", "--listen", "127.0.0.1:0", "--no-socket");
        var doctor = await Processes.Latchkey(_home.Path, null, environment, "doctor", "--json");

        Assert.NotEqual(0, serve.ExitCode); // db.invalid never answers
        Assert.Equal(warns, serve.Stderr.Contains("warning: ", StringComparison.Ordinal) && serve.Stderr.Contains("sslmode=verify-full", StringComparison.Ordinal));
        var connection = Assert.Single(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), f => f.GetProperty("check").GetString() == "connection");
        Assert.Equal(warns ? "warn" : "ok", connection.GetProperty("status").GetString());
        if (warns)
        {
            Assert.Contains("db.invalid", connection.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Contains("sslmode=verify-full", connection.GetProperty("fix").GetString(), StringComparison.Ordinal);
        }
    }
}
