using System.Diagnostics;
using System.Globalization;
using Latchkey.Store;

// Latchkey benchmarks (not tests: nothing here passes or fails on a number). bench/run.sh runs them all.
//   Latchkey.Bench store [--processes 1,8,32] [--seconds 5]
//       store write and read latency (p50, p99) and throughput with N real OS processes on one store
//   Latchkey.Bench startup --hello PATH [--hello-label LABEL] [--yardstick LABEL=PATH ...]
//                          --program LABEL=PATH [ARGS] [--program ...] [--rounds 40]
//       whole-process wall time of `PROGRAM token NAME` (or `PROGRAM ARGS`, e.g. `--version`) against a hello-world
//       program (the ratios' reference), in alternating rounds; yardsticks (other hello-worlds) run without arguments
//   Latchkey.Bench sse --target LABEL=URL|KEY [--target ...] [--rounds 200]
//       time to the first Server-Sent Event of a streamed /v1/messages answer, per target (bench/gateway.sh)
//   Latchkey.Bench audit [--entries 200000] [--batch 500]
//       the audit log's append cost alone: entries per second and CPU per entry on a fresh SQLite store
//   Latchkey.Bench store-worker MODE HOME NAME PEERS SECONDS OUT      (internal: one worker process)
var mode = args.Length > 0 ? args[0] : "help";
return mode switch
{
    "store" => await StoreBench.RunAsync(
        [.. Option(args, "--processes", "1,8,32").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))],
        double.Parse(Option(args, "--seconds", "5"), CultureInfo.InvariantCulture)),
    "store-worker" => await StoreBench.WorkerAsync(args[1], args[2], args[3], int.Parse(args[4], CultureInfo.InvariantCulture), double.Parse(args[5], CultureInfo.InvariantCulture), args[6]),
    "startup" => await StartupBench.RunAsync(Option(args, "--hello", ""), Option(args, "--hello-label", "hello world (.NET console)"), Options(args, "--yardstick"), Options(args, "--program"), int.Parse(Option(args, "--rounds", "40"), CultureInfo.InvariantCulture)),
    "audit" => await AuditBench.RunAsync(int.Parse(Option(args, "--entries", "200000"), CultureInfo.InvariantCulture), int.Parse(Option(args, "--batch", "500"), CultureInfo.InvariantCulture)),
    "sse" => await SseBench.RunAsync(Options(args, "--target"), int.Parse(Option(args, "--rounds", "200"), CultureInfo.InvariantCulture)),
    _ => Help(),
};

static string Option(string[] args, string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

static List<string> Options(string[] args, string name) =>
    [.. args.Select((a, i) => (a, i)).Where(x => x.a == name && x.i + 1 < args.Length).Select(x => args[x.i + 1])];

static int Help()
{
    Console.Error.WriteLine("usage: Latchkey.Bench store [--processes 1,8,32] [--seconds 5]");
    Console.Error.WriteLine("       Latchkey.Bench startup --hello PATH [--hello-label LABEL] [--yardstick LABEL=PATH ...] --program LABEL=PATH [ARGS] [--program ...] [--rounds 40]");
    return 2;
}

internal static class Stats
{
    /// <summary>The nearest-rank percentile of an ascending list.</summary>
    public static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    public static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}

internal static class StoreBench
{
    private static readonly string[] Modes = ["write", "read", "mixed"];

    public static async Task<int> RunAsync(int[] processCounts, double seconds)
    {
        Console.WriteLine($"Each run: N worker processes on one fresh store (SQLite, WAL, synchronous=FULL), each with its own record of");
        Console.WriteLine($"realistic size; {Stats.F(seconds, "0.#")} s per run after a warm-up, all workers released together.");
        Console.WriteLine("- write: every worker updates its own record (one BEGIN IMMEDIATE transaction, fsync'd) in a loop;");
        Console.WriteLine("- read: every worker reads (and decrypts) a random record in a loop;");
        Console.WriteLine("- mixed: every worker alternates a write of its own record and a read of a random one.");
        Console.WriteLine();
        Console.WriteLine("| run | processes | ops/s (all processes) | p50 ms | p99 ms | max ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var workload in Modes)
        {
            foreach (var n in processCounts)
            {
                var (writes, reads) = await RunOnceAsync(workload, n, seconds);
                if (writes.Count > 0)
                {
                    Row($"{workload}: writes", n, writes, seconds);
                }

                if (reads.Count > 0)
                {
                    Row($"{workload}: reads", n, reads, seconds);
                }
            }
        }

        return 0;
    }

    private static void Row(string label, int n, List<double> sorted, double seconds) =>
        Console.WriteLine($"| {label} | {n} | {Stats.F(sorted.Count / seconds, "0")} | {Stats.F(Stats.Percentile(sorted, 50), "0.00")} | {Stats.F(Stats.Percentile(sorted, 99), "0.00")} | {Stats.F(sorted[^1], "0.0")} |");

    private static async Task<(List<double> Writes, List<double> Reads)> RunOnceAsync(string workload, int n, double seconds)
    {
        var root = Directory.CreateTempSubdirectory("latchkey-bench-").FullName;
        try
        {
            var home = Path.Combine(root, "home");
            await using (var store = SqliteCredentialStore.Open(new StoreHome(home), TimeProvider.System))
            {
                for (var i = 0; i < n; i++)
                {
                    await store.CreateAsync(new NewCredential($"w{i}", CredentialKind.ApiKey, SampleMetadata(), new CredentialSecrets { ApiKey = Secret(0) }), default);
                }
            }

            var workers = Enumerable.Range(0, n).Select(i =>
            {
                var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
                foreach (var a in new[] { "store-worker", workload, home, $"w{i}", n.ToString(CultureInfo.InvariantCulture), seconds.ToString(CultureInfo.InvariantCulture), Path.Combine(root, $"w{i}.txt") })
                {
                    info.ArgumentList.Add(a);
                }

                return Process.Start(info)!;
            }).ToList();
            foreach (var w in workers)
            {
                if (await w.StandardOutput.ReadLineAsync() != "ready")
                {
                    throw new InvalidOperationException("a worker failed to start");
                }
            }

            await File.WriteAllTextAsync(Path.Combine(root, "go"), "go");
            foreach (var w in workers)
            {
                await w.WaitForExitAsync();
                if (w.ExitCode != 0)
                {
                    throw new InvalidOperationException($"a worker exited {w.ExitCode}");
                }

                w.Dispose();
            }

            var writes = new List<double>();
            var reads = new List<double>();
            foreach (var line in Enumerable.Range(0, n).SelectMany(i => File.ReadLines(Path.Combine(root, $"w{i}.txt"))))
            {
                (line[0] == 'w' ? writes : reads).Add(double.Parse(line.AsSpan(2), CultureInfo.InvariantCulture));
            }

            writes.Sort();
            reads.Sort();
            return (writes, reads);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>One worker: warms up, says "ready", waits for the start file, then runs its workload until the time is up.</summary>
    public static async Task<int> WorkerAsync(string workload, string home, string name, int peers, double seconds, string output)
    {
        await using var store = SqliteCredentialStore.Open(new StoreHome(home), TimeProvider.System);
        var random = new Random();
        var doWrite = workload is "write" or "mixed";
        var doRead = workload is "read" or "mixed";
        var i = 0;

        async Task<double> Write()
        {
            var t = Stopwatch.GetTimestamp();
            var result = await store.UpdateAsync(name, new CredentialPatch { ApiKey = Secret(++i) }, WriteCondition.None, default);
            var ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            return result.Succeeded ? ms : throw new InvalidOperationException(result.Outcome.ToString());
        }

        async Task<double> Read()
        {
            var t = Stopwatch.GetTimestamp();
            var record = await store.GetAsync($"w{random.Next(peers)}", default);
            var ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            return record is { State: CredentialState.Ok, Secrets.ApiKey: not null } ? ms : throw new InvalidOperationException("a record is missing or unusable");
        }

        for (var warm = 0; warm < 20; warm++)
        {
            _ = doWrite ? await Write() : 0;
            _ = doRead ? await Read() : 0;
        }

        Console.WriteLine("ready");
        var go = Path.Combine(Path.GetDirectoryName(home)!, "go");
        while (!File.Exists(go))
        {
            await Task.Delay(2);
        }

        var lines = new List<string>(200_000);
        var elapsed = Stopwatch.StartNew();
        while (elapsed.Elapsed.TotalSeconds < seconds)
        {
            if (doWrite)
            {
                lines.Add("w " + Stats.F(await Write(), "0.0000"));
            }

            if (doRead)
            {
                lines.Add("r " + Stats.F(await Read(), "0.0000"));
            }
        }

        await File.WriteAllLinesAsync(output, lines);
        return 0;
    }

    /// <summary>An API key's size: 108 characters, like an Anthropic key.</summary>
    private static string Secret(int i) => "sk-ant-bench-" + i.ToString("D10", CultureInfo.InvariantCulture) + new string('x', 85);

    private static CredentialMetadata SampleMetadata() => new()
    {
        Upstream = "https://api.anthropic.com",
        Injection = new InjectionRule("x-api-key", "{secret}"),
    };
}

internal static class StartupBench
{
    public static async Task<int> RunAsync(string hello, string helloLabel, List<string> yardsticks, List<string> programs, int rounds)
    {
        // LABEL=PATH runs `PATH token bench`; LABEL=PATH ARGS (split on spaces) runs `PATH ARGS`. A yardstick runs bare.
        var targets = programs.Select(p => Target(p, setup: true)).Concat(yardsticks.Select(y => Target(y, setup: false))).ToList();
        if (!File.Exists(hello) || targets.Count == 0 || targets.Any(t => !File.Exists(t.Path)))
        {
            Console.Error.WriteLine("startup needs --hello PATH and at least one --program LABEL=PATH, each an existing executable (bench/run.sh builds them)");
            return 2;
        }

        var root = Directory.CreateTempSubdirectory("latchkey-bench-").FullName;
        try
        {
            // Each program reads a home of its own, set up by the full tool beside it (the native token program has no
            // 'add'), so builds with different store schemas can be compared in one run.
            var homes = new List<string>();
            foreach (var (t, k) in targets.Select((t, k) => (t, k)))
            {
                var home = Path.Combine(root, $"home-{k}");
                homes.Add(home);
                if (!t.Setup)
                {
                    continue;
                }

                var beside = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(t.Path))!, "latchkey");
                using var add = Start(File.Exists(beside) ? beside : t.Path, home, "add", "bench", "--upstream", "https://api.anthropic.com", "--header", "x-api-key", "--format", "{secret}");
                await add.StandardInput.WriteLineAsync("sk-ant-bench-" + new string('x', 95));
                add.StandardInput.Close();
                var error = add.StandardError.ReadToEndAsync();
                await add.WaitForExitAsync();
                if (add.ExitCode != 0)
                {
                    Console.Error.WriteLine($"{t.Label}: {await error}");
                    return 1;
                }
            }

            // Warm the file cache for all, then alternate within every round so drift and noise hit all alike.
            for (var i = 0; i < 3; i++)
            {
                await Time(hello, homes[0]);
                for (var k = 0; k < targets.Count; k++)
                {
                    await Time(targets[k].Path, homes[k], targets[k].Args);
                }
            }

            var helloTimes = new List<double>();
            var times = targets.Select(_ => new List<double>()).ToList();
            for (var i = 0; i < rounds; i++)
            {
                helloTimes.Add(await Time(hello, homes[0]));
                for (var k = 0; k < targets.Count; k++)
                {
                    times[k].Add(await Time(targets[k].Path, homes[k], targets[k].Args));
                }
            }

            // Per-round ratios: each run against the hello-world run of the same round.
            var ratios = times.Select(ts => ts.Select((t, i) => t / helloTimes[i]).Order().ToList()).ToList();
            var sortedHello = helloTimes.Order().ToList();
            Console.WriteLine($"Whole-process wall time (start to exit, output read), {rounds} rounds; each round runs every program once, in turn.");
            Console.WriteLine();
            Console.WriteLine("| program | p50 ms | p90 ms | p99 ms | min ms | ratio of medians | per-round ratio p50 | per-round ratio p90 |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
            Console.WriteLine($"| {helloLabel} | {Ms(sortedHello)} | 1.00 | 1.00 | 1.00 |");
            for (var k = 0; k < targets.Count; k++)
            {
                var sorted = times[k].Order().ToList();
                Console.WriteLine($"| {targets[k].Label} | {Ms(sorted)} | {Stats.F(Stats.Percentile(sorted, 50) / Stats.Percentile(sortedHello, 50), "0.00")}x | {Stats.F(Stats.Percentile(ratios[k], 50), "0.00")}x | {Stats.F(Stats.Percentile(ratios[k], 90), "0.00")}x |");
            }

            return 0;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static (string Label, string Path, string[] Args, bool Setup) Target(string spec, bool setup)
    {
        var (label, command) = spec.Split('=', 2) is [var l, var c] ? (l, c) : (spec, "");
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var path = words.Length > 0 ? words[0] : "";
        string[] args = !setup ? [] : words.Length > 1 ? words[1..] : ["token", "bench"];
        return (label, path, args, setup);
    }

    private static string Ms(List<double> sorted) =>
        $"{Stats.F(Stats.Percentile(sorted, 50), "0.0")} | {Stats.F(Stats.Percentile(sorted, 90), "0.0")} | {Stats.F(Stats.Percentile(sorted, 99), "0.0")} | {Stats.F(sorted[0], "0.0")}";

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
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        var ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        var output = await stdout;
        await stderr;
        if (p.ExitCode != 0 || output.Length == 0)
        {
            throw new InvalidOperationException($"{exe} exited {p.ExitCode}"); // never print the output: it is a secret
        }

        return ms;
    }
}
