/* OEE app: the site (/apps/oee/site): today's A × P × Q and OEE for the site (its lines weighted by
 * their planned busy time) and for each line (at its bottleneck), and the last 7 days per line as a
 * table, refreshed every 30 s. English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const NS = "http://www.w3.org/2000/svg";
  const TEXT = {
    en: { site: "Site", line: "Line", today: "Today", week: "Last 7 days (OEE; A × P × Q in the tooltip)", day: "Day",
      a: "Availability", p: "Performance", q: "Quality", oee: "OEE", bottleneck: "bottleneck",
      none: "No machines mapped yet: add one on the Setup page.", nodata: "no planned time today" },
    "zh-CN": { site: "工厂", line: "产线", today: "今天", week: "最近 7 天(OEE;提示中为 可用率 × 性能 × 质量)", day: "日期",
      a: "可用率", p: "性能", q: "质量", oee: "OEE", bottleneck: "瓶颈",
      none: "还没有映射设备:请在配置页添加。", nodata: "今天无计划时间" },
  };
  const T = TEXT[LANG] || TEXT.en;
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

  const tip = (k) => `${T.a} ${pct(k.availability)} × ${T.p} ${pct(k.performance)} × ${T.q} ${pct(k.quality)}`;

  G.pages["app:oee/site"] = async function () {
    const root = document.getElementById("gy-app-root");
    const machines = G.items(await api("GET", `${BASE}/machines`));
    if (!machines.length) { root.replaceChildren(el("p", { class: "muted" }, T.none)); return; }
    const today = el("div", { id: "oee-site-today" });
    const week = el("div", { id: "oee-site-week" });
    root.replaceChildren(el("h3", null, T.today), today, el("h3", null, T.week), week);
    async function draw() {
      const now = new Date();
      const from = new Date(now); from.setHours(0, 0, 0, 0); from.setDate(from.getDate() - 6);
      const q = new URLSearchParams({ start: from.toISOString(), end: now.toISOString(), group: "day" });
      const r = await api("GET", `${BASE}/site/oee?${q}`);
      const last = r.periods[r.periods.length - 1];
      const kids = [last ? bars(T.site, last, last.key) : el("p", { class: "muted" }, T.nodata)];
      for (const [name, line] of Object.entries(r.lines)) {
        const p = line.periods.find((x) => last && x.key === last.key);
        if (p) kids.push(bars(T.line + " " + name, p, T.bottleneck + ": " + p.bottleneck));
      }
      today.replaceChildren(...kids);
      const names = Object.keys(r.lines);
      const cell = (k) => el("td", { class: "num", title: k ? tip(k) : "" }, k ? pct(k.oee) : "—");
      const rows = [...r.periods].reverse().map((p) => el("tr", { "data-day": p.key }, el("td", null, p.key), cell(p),
        names.map((n) => cell(r.lines[n].periods.find((x) => x.key === p.key)))));
      week.replaceChildren(el("table", { class: "table", id: "oee-site-table" },
        el("thead", null, el("tr", null, el("th", null, T.day), el("th", null, T.site), names.map((n) => el("th", null, T.line + " " + n)))),
        el("tbody", null, rows)));
    }
    await draw();
    setInterval(() => draw().catch(() => {}), 30000);
  };
})();
