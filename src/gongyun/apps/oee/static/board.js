/* OEE app: the board of a line (/apps/oee/board): A × P × Q bars and OEE per machine and for the
 * line (at its bottleneck) over today's shifts, and a state timeline per machine for the last
 * eight hours, refreshed every 5 s. Unknown time (no data) is grey, never green. English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const NS = "http://www.w3.org/2000/svg";
  const TEXT = {
    en: { line: "Line", none: "No machines mapped yet: add one through the API (POST /api/v1/apps/oee/machines).",
      a: "Availability", p: "Performance", q: "Quality", oee: "OEE", bottleneck: "bottleneck", lineRow: "Line",
      timeline: "State timeline, last 8 hours", period: "Today", nodata: "no planned time",
      states: { running: "running", idle: "idle", down_planned: "planned stop", down_unplanned: "unplanned stop", setup: "setup", unknown: "no data" } },
    "zh-CN": { line: "产线", none: "还没有映射设备:请通过 API 添加(POST /api/v1/apps/oee/machines)。",
      a: "可用率", p: "性能", q: "质量", oee: "OEE", bottleneck: "瓶颈", lineRow: "产线",
      timeline: "设备状态时间线(最近 8 小时)", period: "今天", nodata: "无计划时间",
      states: { running: "运行", idle: "待机", down_planned: "计划停机", down_unplanned: "非计划停机", setup: "换型", unknown: "无数据" } },
  };
  const T = TEXT[LANG] || TEXT.en;
  const COLORS = { running: "#2f9e44", idle: "#fab005", down_planned: "#748ffc", down_unplanned: "#e03131", setup: "#ae3ec9", unknown: "#ced4da" };
  const BASE = "/api/v1/apps/oee";
  const pct = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + " %");

  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return n;
  }

  function bars(label, k, extra) {
    const W = 640, H = 26, L = 110, TOP = 40;
    const g = svg("svg", { viewBox: `0 0 ${W} ${TOP + 4 * H}`, width: W, height: TOP + 4 * H, class: "oee-bars", "data-name": label });
    g.append(svg("text", { x: 0, y: 16, "font-size": 14, "font-weight": 600 }, label));
    if (extra) g.append(svg("text", { x: 0, y: 32, "font-size": 11, fill: "#555" }, extra));
    [[T.a, k.availability, "#1c7ed6"], [T.p, k.performance, "#f08c00"], [T.q, k.quality, "#2f9e44"], [T.oee, k.oee, "#343a40"]].forEach(([name, v, c], i) => {
      const y = TOP + i * H;
      g.append(svg("text", { x: 0, y: y + 16, "font-size": 12, fill: "#555" }, name));
      g.append(svg("rect", { x: L, y: y + 4, width: W - L - 70, height: H - 10, fill: "#f1f3f5" }));
      g.append(svg("rect", { x: L, y: y + 4, width: Math.max(0, Math.min(1, v || 0)) * (W - L - 70), height: H - 10, fill: c }));
      g.append(svg("text", { x: W - 64, y: y + 16, "font-size": 12 }, pct(v)));
    });
    return g;
  }

  function timeline(name, segs, start, end) {
    const W = 900, H = 26, L = 150;
    const x = (t) => L + ((new Date(t) - start) * (W - L)) / (end - start);
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "oee-timeline", "data-machine": name });
    g.append(svg("text", { x: 0, y: 17, "font-size": 12 }, name));
    for (const s of segs) {
      const r = svg("rect", { x: x(s.start), y: 3, width: Math.max(0.5, x(s.end) - x(s.start)), height: H - 6, fill: COLORS[s.state] || "#999", "data-state": s.state });
      r.append(svg("title", {}, `${T.states[s.state] || s.state}: ${G.formatTime(s.start)} – ${G.formatTime(s.end)}`));
      g.append(r);
    }
    return g;
  }

  G.pages["app:oee/board"] = async function () {
    const root = document.getElementById("gy-app-root");
    const machines = G.items(await api("GET", `${BASE}/machines`));
    if (!machines.length) { root.replaceChildren(el("p", { class: "muted" }, T.none)); return; }
    const lines = [...new Set(machines.map((m) => m.line))];
    const pick = el("select", { id: "oee-line" }, lines.map((l) => el("option", { value: l }, l)));
    const kpis = el("div", { id: "oee-kpis" });
    const tl = el("div", { id: "oee-timelines" });
    const swatch = (c) => svg("svg", { width: 12, height: 12, viewBox: "0 0 12 12" }, svg("rect", { width: 12, height: 12, fill: c }));
    const legend = el("p", { class: "muted", id: "oee-legend" }, Object.entries(COLORS).map(([s, c]) => [swatch(c), " " + T.states[s] + "   "]).flat());
    root.replaceChildren(el("label", null, T.line, " ", pick), el("h3", null, T.period), kpis, el("h3", null, T.timeline), legend, tl);
    async function draw() {
      const line = pick.value;
      const now = new Date();
      const midnight = new Date(now); midnight.setHours(0, 0, 0, 0);
      const q = new URLSearchParams({ start: midnight.toISOString(), end: now.toISOString(), group: "day" });
      const r = await api("GET", `${BASE}/lines/${encodeURIComponent(line)}/oee?${q}`);
      const kids = [];
      const period = r.periods[r.periods.length - 1];
      if (period) kids.push(bars(T.lineRow + " " + line, period, T.bottleneck + ": " + period.bottleneck));
      for (const [name, ps] of Object.entries(r.machines)) {
        const p = ps[ps.length - 1];
        if (p) kids.push(bars(name, p, p.time.pbt > 0 ? null : T.nodata));
      }
      kpis.replaceChildren(...kids);
      const start = new Date(now.getTime() - 8 * 3600e3);
      const tq = new URLSearchParams({ start: start.toISOString(), end: now.toISOString() });
      const rows = [];
      for (const m of machines.filter((m) => m.line === line)) {
        const t = await api("GET", `${BASE}/machines/${m.id}/timeline?${tq}`);
        rows.push(timeline(m.name, t.segments, start, now));
      }
      tl.replaceChildren(...rows);
    }
    pick.addEventListener("change", draw);
    await draw();
    setInterval(() => draw().catch(() => {}), 5000);
  };
})();
