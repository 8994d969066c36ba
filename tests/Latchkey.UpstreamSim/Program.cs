using System.Globalization;
using Latchkey.UpstreamSim;

// latchkey-upstream-sim [--port N] [--scenario NAME] [--chunk-delay-ms N] [--events N]
// Prints one JSON line {"ready":true,"url":"http://127.0.0.1:PORT"} and serves until killed.
var port = 0;
var behaviour = new SimBehaviour();
for (var i = 0; i + 1 < args.Length; i += 2)
{
    var value = args[i + 1];
    switch (args[i])
    {
        case "--port": port = int.Parse(value, CultureInfo.InvariantCulture); break;
        case "--scenario": behaviour.Scenario = value; break;
        case "--chunk-delay-ms": behaviour.ChunkDelay = TimeSpan.FromMilliseconds(int.Parse(value, CultureInfo.InvariantCulture)); break;
        case "--events": behaviour.DeltaEvents = int.Parse(value, CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

await using var upstream = new SimulatedUpstream(behaviour) { RecordRequests = false };
await upstream.StartAsync(port);
Console.WriteLine($"{{\"ready\":true,\"url\":\"{upstream.Url}\"}}");
Console.Out.Flush();
await Task.Delay(Timeout.Infinite);
return 0;
