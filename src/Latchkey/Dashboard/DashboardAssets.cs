namespace Latchkey.Dashboard;

/// <summary>The dashboard's stylesheet and script, served from memory: no front-end build step.</summary>
internal static class DashboardAssets
{
    /// <summary>Plain CSS; one column on a narrow window, wide tables scroll inside their box.</summary>
    public const string Css = """
        :root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #8884; --card: #8881; }
        * { box-sizing: border-box; }
        body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; }
        header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .75rem 1rem; border-bottom: 1px solid var(--line); }
        .brand { font-weight: 700; margin: 0; }
        nav { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; }
        nav ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: 0; padding: 0; }
        nav a[aria-current="page"] { font-weight: 700; text-decoration: none; }
        main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
        h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
        h2 { font-size: 1.15rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
        footer { max-width: 60rem; margin: 0 auto; padding: 0 1rem 2rem; color: GrayText; font-size: .875rem; }
        .card { border: 1px solid var(--line); border-left: .35rem solid var(--ok); border-radius: .4rem; background: var(--card); padding: .75rem 1rem; margin: 0 0 1rem; }
        .card.state-expiring { border-left-color: var(--warn); }
        .card.state-needs-auth, .card.state-quarantined { border-left-color: var(--bad); }
        .badge { display: inline-block; font-size: .8rem; font-weight: 600; padding: 0 .5rem; border-radius: 1rem; border: 1px solid currentColor; color: var(--ok); vertical-align: middle; }
        .badge[data-state="expiring"] { color: var(--warn); }
        .badge[data-state="needs-auth"], .badge[data-state="quarantined"] { color: var(--bad); }
        .reason { border-left: 3px solid var(--bad); padding: .25rem .75rem; margin: .5rem 0; }
        .reason p { margin: .25rem 0; }
        dl { display: grid; grid-template-columns: minmax(8rem, max-content) 1fr; gap: .2rem 1rem; margin: .5rem 0; }
        dt { font-weight: 600; }
        dd { margin: 0; overflow-wrap: anywhere; }
        @media (max-width: 36rem) { dl { grid-template-columns: 1fr; } dd { margin-bottom: .4rem; } }
        .code, .muted, .hint { color: GrayText; font-size: .875rem; }
        code { font-family: ui-monospace, monospace; font-size: .9em; overflow-wrap: anywhere; }
        .actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: flex-start; margin: .5rem 0; }
        form.inline { display: inline; margin: 0; }
        .stack { display: grid; gap: .35rem; max-width: 28rem; }
        .stack button { justify-self: start; margin-top: .5rem; }
        label { font-weight: 600; }
        input { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: .3rem; width: 100%; }
        button { font: inherit; padding: .3rem .9rem; border-radius: .3rem; border: 1px solid var(--line); cursor: pointer; }
        button.danger { color: var(--bad); }
        button.link { border: 0; background: none; padding: 0; text-decoration: underline; color: LinkText; }
        details summary { cursor: pointer; }
        details.danger[open] { border: 1px solid var(--bad); border-radius: .3rem; padding: .5rem; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
        caption { text-align: left; color: GrayText; font-size: .875rem; }
        th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        .flash { border-radius: .4rem; padding: .25rem 1rem; margin: 0 0 1rem; border: 1px solid var(--ok); }
        .flash.error { border-color: var(--bad); }
        .newkey { border: 2px solid var(--warn); border-radius: .4rem; padding: .75rem 1rem; margin: 0 0 1rem; }
        .newkey input { font-family: ui-monospace, monospace; }
        .summary { margin-top: 0; }
        .chart { margin: .5rem 0 1rem; }
        .chart svg { max-width: 100%; height: auto; color: CanvasText; }
        .legend, .periods { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: .25rem 0; padding: 0; font-size: .875rem; }
        .periods a[aria-current="page"] { font-weight: 700; text-decoration: none; }
        section { margin: 0 0 1.5rem; }
        .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
        """;

    /// <summary>
    /// The page script: on the sign-in page it moves the one-time token from the URL fragment into a form post (and
    /// off the address bar); on the other pages it listens to the session's <c>events</c> stream and reloads when the store changed.
    /// </summary>
    public const string Script = """
        (() => {
          'use strict';
          const signin = document.getElementById('signin');
          if (signin) {
            const m = /^#token=([A-Za-z0-9_-]{20,128})$/.exec(location.hash);
            if (m) {
              history.replaceState(null, '', location.pathname);
              signin.elements.token.value = m[1];
              document.getElementById('signin-status').textContent = 'Signing you in…';
              signin.submit();
            }
            return;
          }
          const mark = document.body.dataset.fingerprint;
          const stream = document.body.dataset.events;
          if (!mark || !stream || !window.EventSource) return;
          const live = document.getElementById('live');
          const events = new EventSource(stream);
          events.onmessage = (e) => {
            if (e.data === mark) return;
            if (document.querySelector('[data-hold]') || document.querySelector('details[open] form, input:focus')) {
              live.textContent = 'Something changed since this page was shown: reload to see it.';
              return;
            }
            events.close();
            location.reload();
          };
          events.onerror = () => { live.textContent = 'Live updates paused: the gateway is not answering.'; };
        })();
        """;
}
