using System.Diagnostics;
using System.Globalization;
using Latchkey.Store;

// Latchkey benchmarks. Usage:
//   Latchkey.Bench store --processes 1,8,32 --seconds 5
//       store read and write latency (p50, p99) and throughput, with N real processes on one store
//   Latchkey.Bench startup --latchkey PATH --hello PATH [--rounds 40]
//       whole-process time of `latchkey token NAME` against a hello-world .NET program, alternating runs
//   Latchkey.Bench store-worker HOME NAME PEERS SECONDS OUT      (internal: one worker process)
var mode = args.Length > 0 ? args[0] : "help";
return mode switch
{
    "store" => await StoreBench.RunAsync(Option(args, "--processes", "1,8,32").Split(',').Select(int.Parse).ToArray(), double.Parse(Option(args, "--seconds", "5"), CultureInfo.InvariantCulture)),
    "store-worker" => await StoreBench.WorkerAsync(args[1], args[2], int.Parse(args[3]), double.Parse(args[4], CultureInfo.InvariantCulture), args[5]),
    "startup" => await StartupBench.RunAsync(Option(args, "--latchkey", ""), Option(args, "--hello", ""), int.Parse(Option(args, "--rounds", "40"))),
    _ => Help(),
};

static string Option(string[] args, string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

static int Help()
{
    Console.Error.WriteLine("usage: Latchkey.Bench store [--processes 1,8,32] [--seconds 5] | startup --latchkey PATH --hello PATH [--rounds 40]");
    return 2;
}

internal static class Percentiles
{
    public static double Of(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
}

internal static class StoreBench
{
    public static async Task<int> RunAsync(int[] processCounts, double seconds)
    {
        Console.WriteLine($"## Store: SQLite, WAL, synchronous=FULL, {Environment.ProcessorCount} cores, {seconds:0.#} s per run");
        Console.WriteLine();
        Console.WriteLine("| processes | writes/s | write p50 ms | write p99 ms | reads/s | read p50 ms | read p99 ms |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var n in processCounts)
        {
            var root = Directory.CreateTempSubdirectory("latchkey-bench-").FullName;
            try
            {
                var home = Path.Combine(root, "home");
                await using (var store = SqliteCredentialStore.Open(new StoreHome(home), TimeProvider.System))
                {
                    for (var i = 0; i < n; i++)
                    {
                        await store.CreateAsync(new NewCredential($"w{i}", CredentialKind.ApiKey, new CredentialMetadata { Upstream = "https://api.example.com" }, new CredentialSecrets { ApiKey = new string('k', 100) }), default);
                    }
                }

                var workers = Enumerable.Range(0, n).Select(i =>
                {
                    var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
                    foreach (var a in new[] { "store-worker", home, $"w{i}", n.ToString(), seconds.ToString(CultureInfo.InvariantCulture), Path.Combine(root, $"w{i}.txt") })
                    {
                        info.ArgumentList.Add(a);
                    }

                    return Process.Start(info)!;
                }).ToList();
                foreach (var w in workers)
                {
                    await w.StandardOutput.ReadLineAsync(); // "ready"
                }

                await File.WriteAllTextAsync(Path.Combine(root, "go"), "go");
                foreach (var w in workers)
                {
                    await w.WaitForExitAsync();
                    w.Dispose();
                }

                var writes = new List<double>();
                var reads = new List<double>();
                foreach (var line in Enumerable.Range(0, n).SelectMany(i => File.ReadLines(Path.Combine(root, $"w{i}.txt"))))
                {
                    var value = double.Parse(line.AsSpan(2), CultureInfo.InvariantCulture);
                    (line[0] == 'w' ? writes : reads).Add(value);
                }

                writes.Sort();
                reads.Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} | {writes.Count / seconds:0} | {Percentiles.Of(writes, 50):0.00} | {Percentiles.Of(writes, 99):0.00} | {reads.Count / seconds:0} | {Percentiles.Of(reads, 50):0.000} | {Percentiles.Of(reads, 99):0.000} |"));
            }
            finally
            {
                Directory.Delete(root, recursive: true);
            }
        }

        return 0;
    }

    /// <summary>One worker: writes its own record and reads a random one, alternately, until the time is up.</summary>
    public static async Task<int> WorkerAsync(string home, string name, int peers, double seconds, string output)
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(home), TimeProvider.System);
        Console.WriteLine("ready");
        var go = Path.Combine(Path.GetDirectoryName(home)!, "go");
        while (!File.Exists(go))
        {
            await Task.Delay(2);
        }

        var lines = new List<string>(100_000);
        var random = new Random();
        var end = Stopwatch.StartNew();
        var i = 0;
        while (end.Elapsed.TotalSeconds < seconds)
        {
            var t = Stopwatch.GetTimestamp();
            var result = await store.UpdateAsync(name, new CredentialPatch { ApiKey = $"k{i++}" }, WriteCondition.None, default);
            var writeMs = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            if (!result.Succeeded)
            {
                throw new InvalidOperationException(result.Outcome.ToString());
            }

            t = Stopwatch.GetTimestamp();
            _ = await store.GetAsync($"w{random.Next(peers)}", default) ?? throw new InvalidOperationException("missing");
            var readMs = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"w {writeMs:0.0000}"));
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"r {readMs:0.0000}"));
        }

        await File.WriteAllLinesAsync(output, lines);
        return 0;
    }
}

internal static class StartupBench
{
    public static async Task<int> RunAsync(string latchkey, string hello, int rounds)
    {
        if (!File.Exists(latchkey) || !File.Exists(hello))
        {
            Console.Error.WriteLine("startup needs --latchkey PATH and --hello PATH to built executables (bench/run.sh builds them)");
            return 2;
        }

        var root = Directory.CreateTempSubdirectory("latchkey-bench-").FullName;
        try
        {
            var home = Path.Combine(root, "home");
            var add = Start(latchkey, home, "add", "bench", "--upstream", "https://api.example.com");
            await add.StandardInput.WriteLineAsync("sk-bench-secret");
            add.StandardInput.Close();
            await add.WaitForExitAsync();
            if (add.ExitCode != 0)
            {
                Console.Error.WriteLine(await add.StandardError.ReadToEndAsync());
                return 1;
            }

            // Warm the file cache for both, then alternate so drift affects both alike.
            for (var i = 0; i < 3; i++)
            {
                await Time(hello, home);
                await Time(latchkey, home, "token", "bench");
            }

            var helloTimes = new List<double>();
            var tokenTimes = new List<double>();
            for (var i = 0; i < rounds; i++)
            {
                helloTimes.Add(await Time(hello, home));
                tokenTimes.Add(await Time(latchkey, home, "token", "bench"));
            }

            helloTimes.Sort();
            tokenTimes.Sort();
            Console.WriteLine($"## Start-up: whole-process wall time, {rounds} alternating runs each");
            Console.WriteLine();
            Console.WriteLine("| program | p50 ms | p90 ms | min ms |");
            Console.WriteLine("|---|---:|---:|---:|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| hello world (.NET console) | {Percentiles.Of(helloTimes, 50):0.0} | {Percentiles.Of(helloTimes, 90):0.0} | {helloTimes[0]:0.0} |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| `latchkey token NAME` | {Percentiles.Of(tokenTimes, 50):0.0} | {Percentiles.Of(tokenTimes, 90):0.0} | {tokenTimes[0]:0.0} |"));
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Ratio of medians: **{Percentiles.Of(tokenTimes, 50) / Percentiles.Of(helloTimes, 50):0.00}x** (target <= 1.5x)"));
            return 0;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static Process Start(string exe, string home, params string[] args)
    {
        var info = new ProcessStartInfo(exe) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["LATCHKEY_HOME"] = home;
        return Process.Start(info)!;
    }

    private static async Task<double> Time(string exe, string home, params string[] args)
    {
        var t = Stopwatch.GetTimestamp();
        using var p = Start(exe, home, args);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        var ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        await stdout;
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(exe)} exited {p.ExitCode}");
        }

        return ms;
    }
}
