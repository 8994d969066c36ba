using System.Diagnostics;
using Latchkey.Store;
using Xunit.Abstractions;

namespace Latchkey.Tests.Store;

/// <summary>
/// The store under many real OS processes and <c>kill -9</c> ("Writers overwrite each other's credentials" and "A
/// crash in the middle of a write tears the record" in docs/failure-modes.md): each process is the store driver
/// (<c>tests/Latchkey.StoreDriver</c>), a separate executable over the same library.
/// </summary>
public sealed class SqliteCredentialStoreProcessTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempHome _home = new();

    public void Dispose() => _home.Dispose();

    [Fact]
    public async Task UpdateAsync_32ProcessesEachWritingItsOwnRecord100TimesWhileReadingAll_NoRecordLostNoneTorn()
    {
        const int processes = 32;
        const int writes = 100;
        var drivers = Enumerable.Range(0, processes).Select(i => StartDriver("own", $"cred-{i:D2}", writes.ToString())).ToList();
        await WaitReady(drivers);
        var clock = Stopwatch.StartNew();
        _home.Go();

        var results = await Task.WhenAll(drivers.Select(Finish));
        output.WriteLine($"{processes} processes x {writes} writes (each followed by a read of every record): {clock.Elapsed.TotalSeconds:0.0} s");

        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.ToString()));
        await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
        var records = await store.ListAsync(default);
        Assert.Equal(processes, records.Count);
        Assert.All(records, r =>
        {
            Assert.Null(Consistency.Check(r));
            Assert.Equal(writes + 1, r.Version);
            Assert.Equal($"{r.Name}:{writes}", r.Secrets.ApiKey);
        });
        Assert.Empty(store.CheckIntegrity());
    }

    [Fact]
    public async Task UpdateAsync_16ProcessesCompareAndSwapOneRecord_SuccessesEqualFinalVersionCount()
    {
        const int processes = 16;
        await using (var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System))
        {
            await store.CreateAsync(new NewCredential("counter", CredentialKind.ApiKey,
                new CredentialMetadata { Upstream = "https://up.example/counter/0" }, new CredentialSecrets { ApiKey = "counter:0" }), default);
        }

        var drivers = Enumerable.Range(0, processes).Select(_ => StartDriver("cas", "counter", "60")).ToList();
        await WaitReady(drivers);
        _home.Go();
        var results = await Task.WhenAll(drivers.Select(Finish));

        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.ToString()));
        var successes = results.Sum(r => int.Parse(r.Stdout.Split("successes=")[1].Trim()));
        output.WriteLine($"{processes} processes x 60 compare-and-swap attempts: {successes} succeeded");
        await using var reopened = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
        var final = (await reopened.GetAsync("counter", default))!;
        Assert.True(successes > 0);
        Assert.Equal(successes + 1, final.Version);
        Assert.Equal($"counter:{successes}", final.Secrets.ApiKey);
        Assert.Null(Consistency.Check(final));
    }

    [Fact]
    public async Task UpdateAsync_WriterKilledWithSigkill200Times_EveryRecordIsACommittedVersionAndNoAcknowledgedWriteLost()
    {
        const int kills = 200;
        string[] names = ["alpha", "beta", "gamma"];
        var acknowledged = names.ToDictionary(n => n, _ => 0L);
        var random = new Random(20261122);
        _home.Go();
        for (var k = 0; k < kills; k++)
        {
            using var driver = Process.Start(Processes.StartInfo(Processes.StoreDriverExe, _home.Path, ["forever", _home.Path, .. names]))!;
            driver.StandardInput.Close();
            var stderr = driver.StandardError.ReadToEndAsync();
            Assert.Equal("ready", await driver.StandardOutput.ReadLineAsync());

            // Let it write for a random while, reading its acknowledgements, then SIGKILL it mid-stream. Most kills
            // wait for its first acknowledged write, so that a slow start (JIT on a loaded machine) cannot make every
            // kill land before any write; one in four lands at a random moment from the start, creation included.
            var budget = TimeSpan.FromMilliseconds(random.Next(1, 60));
            var fromStart = random.Next(4) == 0;
            var firstAck = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var reading = Task.Run(async () =>
            {
                while (await driver.StandardOutput.ReadLineAsync() is { } line)
                {
                    var parts = line.Split(' ');
                    lock (acknowledged)
                    {
                        acknowledged[parts[1]] = Math.Max(acknowledged[parts[1]], long.Parse(parts[2]));
                    }

                    firstAck.TrySetResult();
                }
            });
            if (!fromStart)
            {
                await Task.WhenAny(firstAck.Task, RealTime.ForAsync(TimeSpan.FromSeconds(30)));
                Assert.True(firstAck.Task.IsCompleted, "the writer acknowledged no write within 30 s");
            }

            await RealTime.ForAsync(budget); // the writer is another process: it writes for a real while, then dies
            driver.Kill();
            await driver.WaitForExitAsync();
            await reading;
            Assert.Equal(string.Empty, await stderr); // it was killed, it did not fail on its own

            await using var store = SqliteCredentialStore.Open(new StoreHome(_home.Path), TimeProvider.System);
            Assert.Empty(store.CheckIntegrity());
            foreach (var record in await store.ListAsync(default))
            {
                Assert.Null(Consistency.Check(record));
                Assert.True(record.Version - 1 >= acknowledged[record.Name],
                    $"{record.Name}: write {acknowledged[record.Name]} was acknowledged but the store holds {record.Version - 1}");
            }
        }

        output.WriteLine($"{kills} kills; acknowledged writes per record: {string.Join(", ", acknowledged.Select(a => $"{a.Key}={a.Value}"))}");
        Assert.All(acknowledged.Values, v => Assert.True(v > 50, "the writer barely wrote: the kills did not land during writes"));
    }

    private Process StartDriver(params string[] args)
    {
        var process = Process.Start(Processes.StartInfo(Processes.StoreDriverExe, _home.Path, [args[0], _home.Path, .. args[1..]]))!;
        process.StandardInput.Close();
        return process;
    }

    private static async Task WaitReady(IEnumerable<Process> drivers)
    {
        foreach (var d in drivers)
        {
            Assert.Equal("ready", await d.StandardOutput.ReadLineAsync());
        }
    }

    private static async Task<Processes.Result> Finish(Process process)
    {
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await process.WaitForExitAsync(timeout.Token);
            return new Processes.Result(process.ExitCode, await stdout, await stderr);
        }
    }
}
