using System.Net;
using System.Reflection;
using Latchkey.Dashboard;
using Latchkey.Gateway;
using Latchkey.Hosting;
using Latchkey.Mcp;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Tokens;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Latchkey.Tests.Hosting;

/// <summary>
/// The gateway's wiring: one token engine for the whole gateway, so a refresh is made once per grant for the
/// routes, the MCP proxy and the dashboard's actions alike, and one OAuth client under it.
/// </summary>
public sealed class GatewayServerTests : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Fact]
    public async Task Create_RoutesMcpProxyAndDashboardActions_AllReachTheOneTokenEngine()
    {
        await using var gateway = GatewayServer.Create(new StoreHome(_home.Path), new GatewayOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, TimeProvider.System, LogLevel.Warning);
        var services = gateway.Services;

        var engine = Assert.Single(services.GetServices<TokenEngine>());
        object[] spenders =
        [
            services.GetRequiredService<CredentialRoute>(),
            services.GetRequiredService<ModelRouterRoute>(),
            services.GetRequiredService<McpProxyRoute>(),
            services.GetRequiredService<DashboardEndpoints>(),
        ];
        foreach (var part in spenders)
        {
            var reached = Reachable<TokenEngine>(part);
            Assert.True(reached.Count == 1 && ReferenceEquals(reached[0], engine), $"{part.GetType().Name} reaches {reached.Count} token engine(s), not the gateway's one");
        }

        // The dashboard's reconnect signs in on the same OAuth client (token endpoint client) as the engine refreshes with.
        var engineClient = Assert.Single(Reachable<TokenEndpointClient>(engine));
        var reconnectClients = Reachable<TokenEndpointClient>(services.GetRequiredService<Reconnects>());
        Assert.Same(engineClient, Assert.Single(reconnectClients));
    }

    [Fact]
    public async Task Create_DashboardAndRoutes_ResolvedOnceFromTheContainer()
    {
        await using var gateway = GatewayServer.Create(new StoreHome(_home.Path), new GatewayOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) }, TimeProvider.System, LogLevel.Warning);
        var services = gateway.Services;

        Assert.Same(services.GetRequiredService<DashboardEndpoints>(), services.GetRequiredService<DashboardEndpoints>());
        Assert.Same(services.GetRequiredService<ICredentialStore>(), services.GetRequiredService<IClientKeyStore>());
        Assert.Same(services.GetRequiredService<ICredentialStore>(), services.GetRequiredService<Latchkey.Audit.IAuditLog>());
    }

    /// <summary>Every distinct <typeparamref name="T"/> reachable from <paramref name="root"/> through the instance
    /// fields of Latchkey's own types (captured constructor parameters included).</summary>
    private static List<T> Reachable<T>(object root)
        where T : class
    {
        var found = new List<T>();
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<object>([root]);
        while (pending.TryPop(out var current))
        {
            if (!seen.Add(current))
            {
                continue;
            }

            if (current is T match)
            {
                found.Add(match);
            }

            for (var type = current.GetType(); type is not null && IsLatchkeys(type); type = type.BaseType)
            {
                foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (!field.FieldType.IsValueType && field.GetValue(current) is { } value && (value is T || IsLatchkeys(value.GetType())))
                    {
                        pending.Push(value);
                    }
                }
            }
        }

        return found;
    }

    private static bool IsLatchkeys(Type type) => type.Assembly.GetName().Name is "latchkey" or "Latchkey.Core";
}
