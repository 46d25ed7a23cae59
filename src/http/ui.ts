/**
 * The status page at /ui/: one self-contained HTML document (no CDN, no build step), which
 * long-polls /v1/grapevine/state as a blocking query and redraws on every change: members with
 * their state, address, incarnation and last change; services with their instances and health;
 * a live event log. A token, when the API needs one for reads, goes in the page's URL fragment
 * (/ui/#token=...) and is sent as a header, never to the server in the URL.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>grapevine</title>
<style>
  :root { --fg: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f8f9fb; --ok: #12805c; --warn: #b54708; --bad: #c01048; --sus: #7a5af8; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 12px 16px; background: #fff; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: var(--muted); font-size: 13px; }
  #live { font-size: 12px; color: var(--muted); margin-left: auto; }
  #live.on::before { content: "\\25CF "; color: var(--ok); }
  main { padding: 12px 16px; display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); max-width: 1200px; }
  @media (min-width: 900px) { main { grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); } #events-card { grid-column: 2; grid-row: 1 / span 2; } }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; min-width: 0; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  .scroll { overflow-x: auto; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-weight: 600; color: var(--muted); font-size: 12px; }
  .state { font-weight: 600; }
  .alive, .passing { color: var(--ok); } .suspect { color: var(--sus); } .dead, .critical { color: var(--bad); } .left { color: var(--muted); } .warning { color: var(--warn); }
  .service { margin-bottom: 12px; }
  .service h3 { font-size: 14px; margin: 0 0 4px; }
  .tags { color: var(--muted); font-size: 12px; }
  #events { list-style: none; margin: 0; padding: 0; max-height: 70vh; overflow-y: auto; font-size: 13px; }
  #events li { padding: 3px 0; border-bottom: 1px dashed var(--line); }
  #events time { color: var(--muted); margin-right: 6px; font-variant-numeric: tabular-nums; }
  .empty { color: var(--muted); }
</style>
</head>
<body>
<header><h1>grapevine</h1><span class="meta" id="self">connecting...</span><span id="live">offline</span></header>
<main>
  <section id="members-card"><h2>Members <span class="meta" id="member-count"></span></h2><div class="scroll"><table>
    <thead><tr><th>name</th><th>state</th><th>address</th><th>incarnation</th><th>last change</th></tr></thead>
    <tbody id="members"></tbody></table></div></section>
  <section id="services-card"><h2>Services</h2><div id="services" class="scroll"></div></section>
  <section id="events-card"><h2>Events</h2><ul id="events"></ul></section>
</main>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { "X-Consul-Token": token } : {};
const el = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const ago = (t) => { const s = Math.max(0, Math.round((Date.now() - t) / 1000)); return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago"; };
function render(st) {
  el("self").textContent = st.self.name + " at " + st.self.address + " \\u00b7 health score " + st.self.healthScore + " \\u00b7 v" + st.self.version;
  const counts = {};
  for (const m of st.members) counts[m.state] = (counts[m.state] || 0) + 1;
  el("member-count").textContent = Object.entries(counts).map(([k, v]) => v + " " + k).join(", ");
  el("members").innerHTML = st.members.map((m) => '<tr data-member="' + esc(m.name) + '"><td>' + esc(m.name) + '</td><td class="state ' + esc(m.state) + '">' + esc(m.state)
    + "</td><td>" + esc(m.addr) + "</td><td>" + m.incarnation + "</td><td>" + (m.changedAt ? esc(ago(m.changedAt)) : "") + "</td></tr>").join("");
  el("services").innerHTML = st.services.length === 0 ? '<p class="empty">no services registered</p>' : st.services.map((s) => '<div class="service"><h3>' + esc(s.name)
    + ' <span class="tags">' + s.instances.length + " instance" + (s.instances.length === 1 ? "" : "s") + "</span></h3><table><thead><tr><th>id</th><th>node</th><th>address</th><th>health</th><th>tags</th></tr></thead><tbody>"
    + s.instances.map((i) => "<tr><td>" + esc(i.id) + "</td><td>" + esc(i.node) + (i.suspect ? ' <span class="suspect">(suspect)</span>' : "") + "</td><td>" + esc(i.hostPort)
      + '</td><td class="' + esc(i.health) + '">' + esc(i.health) + '</td><td class="tags">' + esc(i.tags.join(", ")) + "</td></tr>").join("") + "</tbody></table></div>").join("");
  el("events").innerHTML = st.events.slice().reverse().map((e) => "<li><time>" + esc(new Date(e.at).toLocaleTimeString()) + "</time>" + esc(e.text) + "</li>").join("") || '<li class="empty">nothing yet</li>';
}
async function poll() {
  let index = 0;
  for (;;) {
    try {
      const res = await fetch("/v1/grapevine/state?wait=30s&index=" + index, { headers });
      if (!res.ok) throw new Error(res.status + " " + await res.text());
      index = Number(res.headers.get("X-Consul-Index")) || 0;
      render(await res.json());
      el("live").className = "on"; el("live").textContent = "live";
    } catch (e) {
      el("live").className = ""; el("live").textContent = "offline: " + e.message;
      await new Promise((r) => setTimeout(r, 1000));
      index = 0;
    }
  }
}
poll();
</script>
</body>
</html>
`;
