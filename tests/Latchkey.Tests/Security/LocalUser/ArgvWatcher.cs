using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Latchkey.Tests.Security.LocalUser;

/// <summary>
/// Another local user (<c>nobody</c>, through <c>setpriv</c>) who watches every process's arguments: every 5 ms it
/// reads <c>/proc/*/cmdline</c> of every process and <c>/proc/*/environ</c> wherever it may (its own processes
/// only), and acts at once on what it reads:
/// <list type="bullet">
/// <item>every run of 20 to 128 URL-safe characters it reads (the shape of the dashboard's one-time token) is posted
/// to the gateway's <c>/ui/session</c> as a sign-in token, once, with the gateway's own <c>Origin</c>;</item>
/// <item>every URL of the authorization server that carries <c>state</c> and <c>redirect_uri</c> is answered first:
/// <c>GET redirect_uri?state=S&amp;error=access_denied&amp;iss=ISSUER</c>;</item>
/// <item>every file path or <c>file:</c> URL it reads (of a small file that is not a program) is opened and
/// searched the same way (it may not read the owner's private files, and counts the refusals).</item>
/// </list>
/// What its first scan reads was there before the test began: that is noted, not attacked. Only the gateway and the
/// issuer it is given are attacked, so other tests running meanwhile are left alone.
/// </summary>
internal sealed class ArgvWatcher : IAsyncDisposable
{
    private const string Script = """
        const fs = require('fs');
        const http = require('http');
        const [gateway, issuer] = process.argv.slice(1);
        const seen = new Set();
        const tried = new Set();
        const r = { scans: 0, cmdlines: 0, environs: 0, filesRead: 0, filesRefused: 0, strings: [], redemptions: [], forgeries: [] };
        const queue = []; let busy = 0;
        const pump = () => { while (busy < 8 && queue.length) { busy++; queue.shift()().finally(() => { busy--; pump(); }); } };
        const post = (url, body, headers) => new Promise((resolve) => {
          queue.push(() => new Promise((done) => {
            const req = http.request(url, { method: 'POST', headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } }, (res) => { res.resume(); resolve(res); done(); });
            req.on('error', () => { resolve(null); done(); }); req.end(body);
          }));
          pump();
        });
        const get = (url) => new Promise((resolve) => {
          http.get(url, (res) => { res.resume(); resolve(res); }).on('error', () => resolve(null));
        });
        function attack(text) {
          if (gateway !== '-') {
            for (const m of text.matchAll(/[A-Za-z0-9_-]{20,128}/g)) {
              const token = m[0];
              if (tried.has(token) || tried.size > 5000) continue;
              tried.add(token);
              post(gateway + '/ui/session', 'token=' + encodeURIComponent(token), { 'Content-Type': 'application/x-www-form-urlencoded', 'Origin': gateway })
                .then((res) => r.redemptions.push({ token, status: res ? res.statusCode : 0, session: !!(res && res.headers['set-cookie']) }));
            }
          }
          if (issuer !== '-') {
            for (const m of text.matchAll(/https?:\/\/[^\s"'<>]+/g)) {
              let u; try { u = new URL(m[0].replace(/&amp;/g, '&')); } catch { continue; }
              if (!(u.origin + u.pathname).startsWith(issuer)) continue;
              const state = u.searchParams.get('state'), back = u.searchParams.get('redirect_uri');
              if (!state || !back || tried.has('forged ' + state)) continue;
              tried.add('forged ' + state);
              const target = new URL(back);
              target.search = new URLSearchParams({ state, error: 'access_denied', iss: issuer }).toString();
              get(target.toString()).then((res) => r.forgeries.push({ state, status: res ? res.statusCode : 0 }));
            }
          }
        }
        function readFileOf(text) {
          let path = text;
          if (path.startsWith('file://')) { try { path = decodeURIComponent(new URL(path).pathname); } catch { return; } }
          if (!path.startsWith('/') || path.startsWith('/proc/') || path.startsWith('/dev/')) return;
          try {
            const st = fs.statSync(path);
            if (!st.isFile() || st.size > 65536 || (st.mode & 0o111) !== 0) return; // pages and notes, not programs
            const content = fs.readFileSync(path, 'utf8');
            r.filesRead++;
            attack(content);
          } catch (e) {
            if (e.code === 'EACCES') r.filesRefused++;
          }
        }
        let baseline = true; // what the first scan reads was there before the test began: noted, not attacked
        function note(text) {
          if (seen.has(text)) return;
          seen.add(text);
          if (baseline) return;
          r.strings.push(text);
          attack(text);
          readFileOf(text);
        }
        function scan() {
          let pids = [];
          try { pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)); } catch {}
          for (const pid of pids) {
            try { const c = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8'); r.cmdlines++; for (const a of c.split('\0')) if (a) note(a); } catch {}
            try { const e = fs.readFileSync('/proc/' + pid + '/environ', 'utf8'); r.environs++; for (const a of e.split('\0')) if (a) note(a); } catch {}
          }
          r.scans++;
        }
        let stopping = false;
        process.on('SIGTERM', () => {
          stopping = true;
          setTimeout(() => { console.log(JSON.stringify(r)); process.exit(0); }, 1500); // let attacks in flight finish
        });
        function loop() { if (stopping) return; scan(); setTimeout(loop, 5); }
        scan();
        baseline = false;
        console.error('ready');
        setTimeout(loop, 5);
        """;

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
    private readonly Process _process;

    private ArgvWatcher(Process process) => _process = process;

    /// <summary>Starts the watcher as <c>nobody</c>.</summary>
    /// <param name="gateway">The gateway's origin to redeem what it reads at, or null.</param>
    /// <param name="issuer">The authorization server whose URLs it answers first, or null.</param>
    public static ArgvWatcher Start(string? gateway, string? issuer)
    {
        var info = new ProcessStartInfo("/usr/bin/setpriv") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/node", "-e", Script, gateway ?? "-", issuer ?? "-" })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["HOME"] = "/";
        var process = Process.Start(info)!;
        Assert.Equal("ready", process.StandardError.ReadLine());
        return new ArgvWatcher(process);
    }

    /// <summary>Stops the watcher and returns what it read and did.</summary>
    public async Task<Report> StopAsync()
    {
        using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", _process.Id.ToString(CultureInfo.InvariantCulture) }, UseShellExecute = false })!)
        {
            await kill.WaitForExitAsync();
        }

        var output = await _process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync();
        return JsonSerializer.Deserialize<Report>(output.Trim(), JsonOptions)!;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    /// <summary>What the watcher read and what its attacks got.</summary>
    internal sealed record Report(int Scans, int Cmdlines, int Environs, int FilesRead, int FilesRefused, List<string> Strings, List<Redemption> Redemptions, List<Forgery> Forgeries)
    {
        /// <summary>A one-line account for a failure message, with every run of URL-safe characters of 20 or more
        /// cut short (they may be the very secrets the test looks for).</summary>
        public string Summary(Func<string, bool> interesting) =>
            $"{Scans} scans, {Cmdlines} cmdlines and {Environs} environs read, {FilesRead} files read and {FilesRefused} refused; {Redemptions.Count} redemptions tried ({Redemptions.Count(x => x.Session)} opened a session), {Forgeries.Count} callbacks forged; e.g. it read: "
            + string.Join(" | ", Strings.Where(interesting).Take(8).Select(Mask));

        public static string Mask(string text) => System.Text.RegularExpressions.Regex.Replace(text, "([A-Za-z0-9_-]{4})[A-Za-z0-9_-]{16,}", "$1…");
    }

    internal sealed record Redemption(string Token, int Status, bool Session);

    internal sealed record Forgery(string State, int Status);
}
