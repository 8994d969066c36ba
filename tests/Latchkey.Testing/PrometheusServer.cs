using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Latchkey.Testing;

/// <summary>
/// A real Prometheus for tests: Debian's <c>prometheus</c> (<c>/usr/bin/prometheus</c>), scraping one target every
/// second from a generated configuration, with its own database in a temporary folder and its HTTP API on a free
/// loopback port. Killed and deleted on dispose. Everything it logs is kept for failure messages.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log;
    private readonly string _root;

    private PrometheusServer(Process process, StringBuilder log, string root, Uri api)
    {
        _process = process;
        _log = log;
        _root = root;
        Api = api;
        Http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = api, Timeout = TimeSpan.FromSeconds(10) };
    }

    /// <summary>Prometheus's own HTTP API (<c>/api/v1/...</c>).</summary>
    public Uri Api { get; }

    public HttpClient Http { get; }

    /// <summary>What Prometheus logged so far.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>The executable, or null when Prometheus is not installed (test.sh installs it: apt-get install -y prometheus).</summary>
    public static string? Executable => File.Exists("/usr/bin/prometheus") ? "/usr/bin/prometheus" : null;

    /// <summary>
    /// Starts Prometheus scraping <paramref name="target"/> (<c>HOST:PORT</c>) at <paramref name="metricsPath"/> every
    /// second; with <paramref name="bearerTokenFile"/>, it sends that file's key as <c>Authorization: Bearer</c>.
    /// Returns once its API answers.
    /// </summary>
    public static async Task<PrometheusServer> StartAsync(string target, string metricsPath = "/metrics", string? bearerTokenFile = null)
    {
        var exe = Executable ?? throw new InvalidOperationException("Prometheus is not installed (/usr/bin/prometheus): apt-get install -y prometheus (test.sh does).");
        var root = Directory.CreateTempSubdirectory("latchkey-prometheus-").FullName;
        var config = Path.Combine(root, "prometheus.yml");
        var authorization = bearerTokenFile is null ? string.Empty : $"\n    authorization:\n      type: Bearer\n      credentials_file: '{bearerTokenFile}'";
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: latchkey
                metrics_path: '{metricsPath}'{authorization}
                static_configs:
                  - targets: ['{target}']
            """);

        var port = FreePort();
        var info = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = root,
        };
        foreach (var argument in new[]
        {
            "--config.file=" + config,
            "--storage.tsdb.path=" + Path.Combine(root, "data"),
            "--web.listen-address=127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
            "--log.level=info",
        })
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info)!;
        process.StandardInput.Close();
        var log = new StringBuilder();
        void Keep(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is not null)
            {
                lock (log)
                {
                    log.AppendLine(e.Data);
                }
            }
        }

        process.OutputDataReceived += Keep;
        process.ErrorDataReceived += Keep;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, log, root, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/"));
        var ready = await RealTime.UntilAsync(async () =>
        {
            if (process.HasExited)
            {
                return true;
            }

            try
            {
                using var response = await server.Http.GetAsync("-/ready");
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(60));
        if (!ready || process.HasExited)
        {
            var output = server.Log;
            await server.DisposeAsync();
            throw new InvalidOperationException($"Prometheus did not start (ready: {ready}):\n{output}");
        }

        return server;
    }

    /// <summary>The scrape target's state: its <c>health</c> (<c>up</c>, <c>down</c>, <c>unknown</c>), its
    /// <c>lastError</c>, and when it was last scraped, from <c>/api/v1/targets</c>.</summary>
    public async Task<(string Health, string LastError, DateTimeOffset? LastScrape)> TargetAsync()
    {
        using var document = JsonDocument.Parse(await Http.GetStringAsync("api/v1/targets?state=active"));
        var targets = document.RootElement.GetProperty("data").GetProperty("activeTargets");
        if (targets.GetArrayLength() == 0)
        {
            return ("unknown", string.Empty, null);
        }

        var target = targets[0];
        DateTimeOffset? last = DateTimeOffset.TryParse(target.GetProperty("lastScrape").GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var at) && at.Year > 2000 ? at : null;
        return (target.GetProperty("health").GetString() ?? "unknown", target.GetProperty("lastError").GetString() ?? string.Empty, last);
    }

    /// <summary>The values of an instant query (<c>/api/v1/query</c>), one per series, as (labels, value).</summary>
    public async Task<IReadOnlyList<(IReadOnlyDictionary<string, string> Labels, double Value)>> QueryAsync(string promQl)
    {
        using var document = JsonDocument.Parse(await Http.GetStringAsync("api/v1/query?query=" + Uri.EscapeDataString(promQl)));
        var data = document.RootElement.GetProperty("data");
        var found = new List<(IReadOnlyDictionary<string, string>, double)>();
        foreach (var series in data.GetProperty("result").EnumerateArray())
        {
            var labels = series.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? string.Empty, StringComparer.Ordinal);
            var value = double.Parse(series.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
            found.Add((labels, value));
        }

        return found;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
