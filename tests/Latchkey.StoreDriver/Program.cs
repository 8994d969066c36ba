using Latchkey.Store;

// Modes (all take --home H and wait for the file H/../go before starting, so every process starts together):
//   own NAME COUNT        create NAME, then write it COUNT times; after each write read every record and
//                         check none is torn. Exit 10 on a torn or quarantined record.
//   cas NAME ATTEMPTS     compare-and-swap increments of NAME's counter; prints "successes=K".
//   forever NAMES...      write the named records in turn until killed; prints "ack NAME I" after each commit.
//   first NAME            the store's first use: open a store in a home of its own first (so the code is warm),
//                         then wait, then open H (making or finding its master key) and create NAME.
// A record written by this driver is consistent when its secret, its upstream's last segment and its version
// all encode the same write index: secret "NAME:i", upstream ".../NAME/i", version i + 1.
var home = new StoreHome(args[1]);
var mode = args[0];
var go = Path.Combine(Path.GetDirectoryName(home.Path)!, "go");
if (mode == "first")
{
    return await First(home, args[2], go);
}

await using var store = SqliteCredentialStore.Open(home, TimeProvider.System);
Console.Out.WriteLine("ready");
Console.Out.Flush();
while (!File.Exists(go))
{
    await Task.Delay(5); // the test process writes the file: a short real-time poll keeps every driver's start together
}

switch (mode)
{
    case "own":
        return await Own(store, args[2], int.Parse(args[3]));
    case "cas":
        return await Cas(store, args[2], int.Parse(args[3]));
    case "forever":
        return await Forever(store, args[2..]);
    default:
        Console.Error.WriteLine($"unknown mode {mode}");
        return 2;
}

static async Task<int> First(StoreHome home, string name, string go)
{
    await using (var warm = SqliteCredentialStore.Open(new StoreHome(home.Path + "-warm-" + name), TimeProvider.System))
    {
        await warm.CreateAsync(Initial(name), default);
    }

    Console.Out.WriteLine("ready");
    Console.Out.Flush();
    while (!File.Exists(go))
    {
        await Task.Delay(1);
    }

    await using var store = SqliteCredentialStore.Open(home, TimeProvider.System);
    await store.CreateAsync(Initial(name), default);
    return 0;
}

static NewCredential Initial(string name) => new(name, CredentialKind.ApiKey,
    new CredentialMetadata { Upstream = $"https://up.example/{name}/0" }, new CredentialSecrets { ApiKey = $"{name}:0" });

static CredentialPatch Write(string name, long i) => new() { Metadata = m => m with { Upstream = $"https://up.example/{name}/{i}" }, ApiKey = $"{name}:{i}" };

static async Task<int> Own(SqliteCredentialStore store, string name, int count)
{
    await store.CreateAsync(Initial(name), default);
    for (var i = 1; i <= count; i++)
    {
        var result = await store.UpdateAsync(name, Write(name, i), WriteCondition.None, default);
        if (!result.Succeeded)
        {
            Console.Error.WriteLine($"write {i} of {name}: {result.Outcome}");
            return 11;
        }

        foreach (var record in await store.ListAsync(default))
        {
            if (Consistency.Check(record) is { } problem)
            {
                Console.Error.WriteLine($"TORN {problem}");
                return 10;
            }
        }
    }

    return 0;
}

static async Task<int> Cas(SqliteCredentialStore store, string name, int attempts)
{
    var successes = 0;
    for (var a = 0; a < attempts; a++)
    {
        var current = await store.GetAsync(name, default) ?? throw new InvalidOperationException("missing");
        var next = long.Parse(current.Secrets.ApiKey!.Split(':')[1]) + 1;
        var result = await store.UpdateAsync(name, Write(name, next), WriteCondition.Version(current.Version), default);
        if (result.Succeeded)
        {
            successes++;
        }
        else if (result.Outcome != WriteOutcome.ConditionFailed)
        {
            Console.Error.WriteLine($"unexpected {result.Outcome}");
            return 11;
        }
    }

    Console.Out.WriteLine($"successes={successes}");
    return 0;
}

static async Task<int> Forever(SqliteCredentialStore store, string[] names)
{
    foreach (var name in names)
    {
        await store.CreateAsync(Initial(name), default);
    }

    while (true)
    {
        foreach (var name in names)
        {
            var current = (await store.GetAsync(name, default))!;
            var next = current.Version;
            var result = await store.UpdateAsync(name, Write(name, next), WriteCondition.Version(current.Version), default);
            if (!result.Succeeded)
            {
                Console.Error.WriteLine($"write of {name}: {result.Outcome}");
                return 11;
            }

            Console.Out.WriteLine($"ack {name} {next}");
            Console.Out.Flush();
        }
    }
}

/// <summary>Checks that a record is exactly one committed write of this driver.</summary>
internal static class Consistency
{
    public static string? Check(CredentialRecord record)
    {
        if (record.State != CredentialState.Ok)
        {
            return $"{record.Name} is {record.State}: {record.Reason?.Message}";
        }

        var secretIndex = record.Secrets.ApiKey?.Split(':') is [var n, var i] && n == record.Name ? i : null;
        var upstreamIndex = record.Metadata.Upstream?.Split('/')[^1];
        return secretIndex is not null && secretIndex == upstreamIndex && long.Parse(secretIndex) == record.Version - 1
            ? null
            : $"{record.Name}: secret index {secretIndex}, upstream index {upstreamIndex}, version {record.Version}";
    }
}
