/* Gongyun console: situational awareness (the security events centre). Polls /api/v1/ids/overview,
 * draws the communication map and the event timeline as inline SVG, and runs the incident workflow. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, errorMessage, flash, badge, table, can, pages } = G;
  const SVG = ["http:", "", "www.w3.org", "2000", "svg"].join("/"); /* the SVG namespace, spelt without a URL literal */
  const SEV_KIND = { low: "muted", medium: "info", high: "warn", critical: "bad" };
  const STATE_KIND = { new: "bad", investigating: "warn", contained: "info", resolved: "ok", false_positive: "muted" };
  const NEXT = {
    new: ["investigating", "contained", "resolved", "false_positive"],
    investigating: ["contained", "resolved", "false_positive"],
    contained: ["investigating", "resolved", "false_positive"],
    resolved: ["investigating"],
    false_positive: ["investigating"],
  };
  const PROTO_COLOUR = { modbus: "#0f5fa8", opcua: "#2e7d32", mqtt: "#8e24aa" };
  let me = null;
  let openIncident = null;
  let timer = null;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  const SEV_KEYS = { low: "sec.sev.low", medium: "sec.sev.medium", high: "sec.sev.high", critical: "sec.sev.critical" };
  const STATE_KEYS = {
    new: "sec.state.new",
    investigating: "sec.state.investigating",
    contained: "sec.state.contained",
    resolved: "sec.state.resolved",
    false_positive: "sec.state.false_positive",
  };
  const sev = (s) => badge(SEV_KIND[s] || "muted", t(SEV_KEYS[s] || "sec.sev.medium"));
  const state = (s) => {
    const b = badge(STATE_KIND[s] || "muted", t(STATE_KEYS[s] || "sec.state.new"));
    b.dataset.state = s;
    return b;
  };
  const when = (ts) => (ts ? G.formatDate(new Date(ts * 1000).toISOString()) : "—");

  function stat(labelKey, value, kind) {
    return el("div", { class: "card stat" }, el("p", { class: "muted" }, t(labelKey)), el("p", { class: "stat-value " + (kind || "") }, String(value)));
  }

  function drawMap(edges) {
    const box = $("#sec-map");
    if (!edges.length) return box.replaceChildren(el("p", { class: "empty-row" }, t("sec.no_flows")));
    const hosts = [...new Set(edges.flatMap((e) => [e.orig, e.resp]))].sort();
    const W = 460, H = 300, R = 110, cx = W / 2, cy = H / 2;
    const pos = {};
    hosts.forEach((h, i) => {
      const a = (2 * Math.PI * i) / hosts.length - Math.PI / 2;
      pos[h] = [cx + R * Math.cos(a), cy + R * Math.sin(a)];
    });
    const lines = edges.map((e, i) => {
      const [x1, y1] = pos[e.orig], [x2, y2] = pos[e.resp];
      const bend = 18 * ((i % 3) - 1);
      const mx = (x1 + x2) / 2 + bend, my = (y1 + y2) / 2 - bend;
      return svg("path", {
        d: `M${x1},${y1} Q${mx},${my} ${x2},${y2}`,
        fill: "none",
        stroke: e.anomalous ? "#c62828" : PROTO_COLOUR[e.service] || "#607080",
        "stroke-width": e.anomalous ? 3 : 1.5 + Math.min(3, Math.log10(1 + e.packets) / 2),
        "stroke-dasharray": e.anomalous ? "6 3" : "",
        class: e.anomalous ? "flow flow-anomalous" : "flow",
      }, svg("title", {}, `${e.orig} → ${e.resp} ${e.service}: ${e.packets} packets`));
    });
    const nodes = hosts.map((h) =>
      svg("g", { class: "host" },
        svg("circle", { cx: pos[h][0], cy: pos[h][1], r: 9, fill: "#fff", stroke: "#0f5fa8", "stroke-width": 2 }),
        svg("text", { x: pos[h][0], y: pos[h][1] - 14, "text-anchor": "middle", "font-size": 11 }, h)));
    const legend = Object.entries(PROTO_COLOUR).map(([p, c], i) =>
      svg("g", {}, svg("rect", { x: 8, y: 8 + i * 16, width: 12, height: 4, fill: c }), svg("text", { x: 26, y: 14 + i * 16, "font-size": 11 }, p)));
    legend.push(svg("g", {}, svg("rect", { x: 8, y: 56, width: 12, height: 4, fill: "#c62828" }), svg("text", { x: 26, y: 62, "font-size": 11 }, t("sec.legend.anomalous"))));
    box.replaceChildren(svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": t("sec.map"), id: "sec-map-svg" }, lines, nodes, legend));
  }

  function drawTimeline(events) {
    const box = $("#sec-timeline");
    if (!events.length) return box.replaceChildren(el("p", { class: "empty-row" }, t("sec.no_events")));
    const W = 460, H = 160, pad = 24;
    const t1 = Date.now() / 1000, t0 = Math.min(t1 - 3600, Math.min(...events.map((e) => e.last_ts)));
    const buckets = 60, size = (t1 - t0) / buckets;
    const counts = Array.from({ length: buckets }, () => ({ low: 0, medium: 0, high: 0, critical: 0 }));
    for (const e of events) {
      const i = Math.min(buckets - 1, Math.max(0, Math.floor((e.last_ts - t0) / size)));
      counts[i][e.severity] += e.count;
    }
    const max = Math.max(1, ...counts.map((c) => c.low + c.medium + c.high + c.critical));
    const colour = { low: "#90a4ae", medium: "#0f5fa8", high: "#ef6c00", critical: "#c62828" };
    const bw = (W - 2 * pad) / buckets;
    const bars = [];
    counts.forEach((c, i) => {
      let y = H - pad;
      for (const s of ["low", "medium", "high", "critical"]) {
        if (!c[s]) continue;
        const h = ((H - 2 * pad) * c[s]) / max;
        y -= h;
        bars.push(svg("rect", { x: pad + i * bw, y, width: Math.max(bw - 1, 1), height: h, fill: colour[s], class: "bar bar-" + s }));
      }
    });
    const axis = svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#99a" });
    const labels = [svg("text", { x: pad, y: H - 6, "font-size": 10 }, when(t0)), svg("text", { x: W - pad, y: H - 6, "font-size": 10, "text-anchor": "end" }, when(t1))];
    box.replaceChildren(svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": t("sec.timeline"), id: "sec-timeline-svg" }, axis, bars, labels));
  }

  function drawIncidents(list) {
    const columns = [
      { label: "sec.field.severity", render: (i) => sev(i.severity) },
      { label: "sec.field.state", render: (i) => state(i.state) },
      { label: "sec.field.title", render: (i) => i.title },
      { label: "sec.field.techniques", render: (i) => i.techniques.join(", ") },
      { label: "sec.field.events", render: (i) => String(i.event_count) },
      { label: "sec.field.assignee", render: (i) => i.assignee || "—" },
      { label: "sec.field.time", render: (i) => when(i.last_ts) },
      { label: "sec.field.action", render: (i) => el("button", { type: "button", class: "btn btn-small", "data-incident": i.id, onclick: () => showIncident(i.id) }, t("sec.open")) },
    ];
    $("#sec-incidents").replaceChildren(table(columns, list, "sec.no_incidents"));
  }

  async function showIncident(id) {
    openIncident = id;
    const inc = await api("GET", "/api/v1/ids/incidents/" + id);
    $("#sec-incident").hidden = false;
    $("#sec-incident-title").replaceChildren(sev(inc.severity), " ", inc.title, " ", state(inc.state));
    const body = [];
    const link = inc.link || {};
    body.push(el("p", { class: "muted" }, `${inc.src_host} → ${inc.dst}` + (link.device ? ` · ${link.device}` : "") + (link.asset_path ? ` · ${link.asset_path}` : "") + (link.identifier ? ` · ${link.identifier}` : "")));
    if (can(me, "security:write")) {
      const moves = (NEXT[inc.state] || []).map((s) =>
        el("button", { type: "button", class: "btn btn-small", "data-move": s, onclick: () => update(id, { state: s }) }, t(STATE_KEYS[s])));
      body.push(el("p", { class: "actions" }, t("sec.move_to"), " ", moves));
      const who = el("input", { type: "text", id: "sec-assignee", value: inc.assignee || "", "aria-label": t("sec.field.assignee") });
      const note = el("input", { type: "text", id: "sec-note", "aria-label": t("sec.field.note") });
      body.push(el("p", { class: "actions" },
        who, el("button", { type: "button", class: "btn btn-small", onclick: () => update(id, { assignee: who.value }) }, t("sec.assign")), " ",
        note, el("button", { type: "button", class: "btn btn-small", onclick: () => note.value && update(id, { note: note.value }) }, t("sec.add_note"))));
    }
    body.push(el("h3", null, t("sec.timeline_of")));
    body.push(el("ol", { class: "timeline", id: "sec-incident-timeline" }, inc.timeline.map((x) => el("li", null, el("span", { class: "muted" }, G.formatDate(x.ts), " · ", x.by, " · "), x.text))));
    body.push(table(eventColumns(), inc.events, "sec.no_events"));
    $("#sec-incident-body").replaceChildren(...body);
  }

  async function update(id, patch) {
    try {
      await api("PATCH", "/api/v1/ids/incidents/" + id, patch);
      flash("success", t("sec.saved"));
      await refresh();
      await showIncident(id);
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  function eventColumns() {
    return [
      { label: "sec.field.time", render: (e) => when(e.last_ts) },
      { label: "sec.field.severity", render: (e) => sev(e.severity) },
      { label: "sec.field.rule", render: (e) => e.rule_id },
      { label: "sec.field.message", render: (e) => e.msg },
      { label: "sec.field.technique", render: (e) => e.technique },
      { label: "sec.field.source", render: (e) => e.src },
      { label: "sec.field.target", render: (e) => e.dst },
      { label: "sec.field.device", render: (e) => (e.link && e.link.device) || "—" },
      { label: "sec.field.count", render: (e) => String(e.count) },
    ];
  }

  function drawRest(ov) {
    const events = ov.timeline.slice().reverse().slice(0, 50);
    $("#sec-events").replaceChildren(table(eventColumns(), events, "sec.no_events"));
    $("#sec-risk").replaceChildren(table([
      { label: "sec.field.endpoint", render: (r) => r.endpoint + (r.link && r.link.device ? ` (${r.link.device})` : "") },
      { label: "sec.field.score", render: (r) => String(r.score) },
      { label: "sec.field.events", render: (r) => String(r.events) },
      { label: "sec.field.exposure", render: (r) => r.exposure.join(", ") || "—" },
    ], ov.asset_risk, "sec.none"));
    $("#sec-talkers").replaceChildren(table([
      { label: "sec.field.host", render: (r) => r.host },
      { label: "sec.field.bytes", render: (r) => G.formatNumber(r.bytes) },
    ], ov.top_talkers, "sec.none"));
    $("#sec-sensors").replaceChildren(table([
      { label: "sec.field.sensor", render: (s) => s.name },
      { label: "sec.field.status", render: (s) => (s.status === "ok" ? badge("ok", t("sec.status.ok")) : badge("warn", t("sec.status.stale"))) },
      { label: "sec.field.packets", render: (s) => G.formatNumber(s.packets) },
      { label: "sec.field.rate", render: (s) => G.formatNumber(s.packets_per_s) },
      { label: "sec.field.drops", render: (s) => G.formatNumber(s.drops) },
      { label: "sec.field.outbox", render: (s) => G.formatNumber(s.outbox) },
      { label: "sec.field.skips", render: (s) => String(Object.values(s.skips || {}).reduce((a, b) => a + b, 0)) },
      { label: "sec.field.learning", render: (s) => t(s.learning ? "sec.yes" : "sec.no") },
    ], ov.sensors, "sec.no_sensors"));
    const inc = ov.incidents;
    const hi = (inc.by_severity.high || 0) + (inc.by_severity.critical || 0);
    const day = ov.timeline.filter((e) => e.last_ts > Date.now() / 1000 - 86400).reduce((a, e) => a + e.count, 0);
    $("#sec-stats").replaceChildren(
      stat("sec.stat.open", inc.open, inc.open ? "bad" : "ok"),
      stat("sec.stat.critical", hi, hi ? "bad" : "ok"),
      stat("sec.stat.events", day),
      stat("sec.stat.sensors", ov.sensors.filter((s) => s.status === "ok").length + " / " + ov.sensors.length));
  }

  async function refresh() {
    const ov = await api("GET", "/api/v1/ids/overview?hours=24");
    drawMap(ov.map);
    drawTimeline(ov.timeline);
    drawIncidents(ov.incidents.latest);
    drawRest(ov);
    document.body.dataset.secGenerated = String(ov.generated);
  }

  async function initSecurity(user) {
    me = user;
    if (!can(me, "security:read")) {
      $("#sec-denied").hidden = false;
      $("#sec-body").hidden = true;
      return;
    }
    $("#sec-incident-close").addEventListener("click", () => {
      openIncident = null;
      $("#sec-incident").hidden = true;
    });
    await refresh();
    timer = setInterval(() => {
      refresh()
        .then(() => {
          const typing = document.activeElement && document.activeElement.closest && document.activeElement.closest("#sec-incident");
          return openIncident && !typing ? showIncident(openIncident) : null;
        })
        .catch((err) => flash("error", errorMessage(err)));
    }, 3000);
  }

  pages.security = initSecurity;
})();
