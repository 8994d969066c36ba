using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.KeyHolder;

/// <summary>
/// A key holder sends a router a body far over its 32 MiB limit without declaring a length (chunked framing), to
/// make the gateway buffer it, and parse it into a document tree many times its size, and run out of memory. The
/// gateway counts the body as it arrives and refuses it with <c>413</c> once it passes the limit; its resident
/// memory (read from <c>/proc/PID/status</c>) grows by less than 64 MiB.
/// </summary>
public sealed class RouterBodyTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task Route_200MiBChunkedBody_Refused413AndGatewayMemoryGrowsLessThan64MiB()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("big", upstream.Url, "sk-ant-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        await File.WriteAllTextAsync(Path.Combine(gateway.HomePath, "routes.json"), """
            { "routers": { "big": { "routes": [ { "model": "*", "targets": [ { "credential": "big" } ] } ] } } }
            """);
        var key = await gateway.CreateKeyAsync("big-key", "big");
        await WarmUpAsync(gateway, key); // the router, JSON and HTTP code paths are loaded before memory is measured
        var served = upstream.Requests.Count;

        ResetPeak(gateway.Pid);
        var before = Kilobytes(gateway.Pid, "VmRSS");
        var answer = await SendChunkedAsync(gateway.Url, "/r/big/v1/messages", key, 200 * MiB);
        var peak = Kilobytes(gateway.Pid, "VmHWM");
        output.WriteLine($"gateway resident memory: {before / 1024} MiB before, peak {peak / 1024} MiB while refusing 200 MiB");

        Assert.True(answer.Status == 413, $"{answer.Status} {answer.Body}");
        Assert.Equal("body_too_large", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.True((peak - before) * 1024 < 64 * MiB, $"the gateway's resident memory grew by {(peak - before) / 1024} MiB (from {before / 1024} MiB to a peak of {peak / 1024} MiB)");
        Assert.Equal(served, upstream.Requests.Count);

        // Still serving, and a body just under the limit still routes.
        await WarmUpAsync(gateway, key);
    }

    [Fact]
    public async Task Route_DeclaredLengthOverTheLimit_Refused413BeforeReading()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        await File.WriteAllTextAsync(Path.Combine(gateway.HomePath, "routes.json"), """{ "routers": { "big": { "routes": [ { "model": "*", "targets": [ { "credential": "big" } ] } ] } } }""");
        var key = await gateway.CreateKeyAsync("big-key", "big");

        var answer = await RawHttp.SendAsync(gateway.Url, "POST", "/r/big/v1/messages", "x-api-key: " + key, "Content-Type: application/json", $"Content-Length: {(32 * MiB) + 1}");

        Assert.True(answer.Status == 413, $"{answer.Status} {answer.Body}");
        Assert.Contains("body_too_large", answer.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Route_ModelWithALoneSurrogateEscape_Refused400ModelMissingNotAServerError()
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await gateway.AddApiKeyAsync("big", upstream.Url, "sk-ant-" + Guid.NewGuid().ToString("N"), "--header", "x-api-key", "--format", "{secret}");
        await File.WriteAllTextAsync(Path.Combine(gateway.HomePath, "routes.json"), """{ "routers": { "big": { "routes": [ { "model": "*", "targets": [ { "credential": "big" } ] } ] } } }""");
        var key = await gateway.CreateKeyAsync("big-key", "big");
        await WarmUpAsync(gateway, key);
        var served = upstream.Requests.Count;

        var answer = await RawHttp.SendWithBodyAsync(gateway.Url, "POST", "/r/big/v1/messages", """{"model":"\ud800x","max_tokens":8}""", "x-api-key: " + key, "Content-Type: application/json");

        Assert.True(answer.Status == 400, $"{answer.Status} {answer.Body}");
        Assert.Equal("model_missing", (string?)JsonNode.Parse(answer.Body)!["latchkey"]!["reason"]);
        Assert.Equal(served, upstream.Requests.Count);
        Assert.DoesNotContain("InvalidOperationException", gateway.Log, StringComparison.Ordinal);
    }

    private static async Task WarmUpAsync(GatewayProcess gateway, string key)
    {
        // The gateway process reloads routes.json within a second of its own clock.
        using var response = await RealTime.UntilAsync(
            async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/r/big/v1/messages")
                {
                    Content = new StringContent("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
                };
                request.Headers.Add("x-api-key", key);
                return await gateway.Http.SendAsync(request);
            },
            r => r.IsSuccessStatusCode, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200), r => r.Dispose());
        Assert.True(response.IsSuccessStatusCode, $"the router never answered: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>Sends a JSON body of <paramref name="size"/> bytes in 1 MiB chunks with no Content-Length, reading the
    /// answer as it comes; stops writing when the gateway closes the connection.</summary>
    private static async Task<RawResponse> SendChunkedAsync(string baseUrl, string target, string key, long size)
    {
        var uri = new Uri(baseUrl);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        using var received = new MemoryStream();
        var reading = stream.CopyToAsync(received);
        var head = $"POST {target} HTTP/1.1\r\nHost: {uri.Authority}\r\nx-api-key: {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        var opening = Encoding.ASCII.GetBytes("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":" """.TrimEnd());
        var closing = Encoding.ASCII.GetBytes("\"}]}");
        var filler = new byte[MiB];
        filler.AsSpan().Fill((byte)'x');
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            for (var sent = 0L; sent < size && !reading.IsCompleted;)
            {
                var chunk = sent == 0 ? [.. opening, .. filler.AsSpan(opening.Length)] : sent + MiB >= size ? [.. filler.AsSpan(closing.Length), .. closing] : filler;
                await stream.WriteAsync(Encoding.ASCII.GetBytes(chunk.Length.ToString("x", CultureInfo.InvariantCulture) + "\r\n"));
                await stream.WriteAsync(chunk);
                await stream.WriteAsync("\r\n"u8.ToArray());
                sent += chunk.Length;
            }

            await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
        }
        catch (IOException)
        {
            // the gateway closed the connection after refusing the body: expected
        }

        try
        {
            await reading.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (IOException)
        {
            // a reset after the answer was read
        }

        return RawHttp.Parse(received.ToArray());
    }

    private static void ResetPeak(int pid) => File.WriteAllText($"/proc/{pid}/clear_refs", "5"); // VmHWM := VmRSS

    private static long Kilobytes(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}
