/* Quality app: the live control chart page (/apps/quality/charts). Points arrive while you watch
 * (polled every 3 s); centre line, control limits and the 1σ/2σ zones are drawn; points that break
 * a run rule are red, with the rules named; an open violation is acknowledged from here (the
 * chart's alarm through the alarms API, and the violation itself). English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const NS = "http://www.w3.org/2000/svg";
  const TEXT = {
    en: {
      chart: "Chart", window: "Window", h1: "Last hour", h8: "Last 8 hours", h24: "Last 24 hours", d7: "Last 7 days", d30: "Last 30 days",
      left: (l) => `Drawn: the newest points; ${l.points} points before ${G.formatTime(l.before)} left out` +
        (l.subgroups !== null ? ` (${l.subgroups} subgroups)` : "") + (l.lots !== null ? ` (${l.lots} lots)` : "") +
        (l.mean !== null ? `: mean ${G.formatNumber(l.mean)}, min ${G.formatNumber(l.min)}, max ${G.formatNumber(l.max)}` : ""),
      none: "No control charts yet: create one through the API (POST /api/v1/apps/quality/charts).",
      empty: "No data in the window.", preview: "Preview limits from this window (not frozen yet)",
      version: "Frozen limits, version", violations: "Open violations", time: "Time", rules: "Rules",
      value: "Value", ack: "Acknowledge", acked: "Acknowledged", nothing: "No open violations.",
      centre: "CL", ucl: "UCL", lcl: "LCL", points: "points", marked: "marked by run rules",
    },
    "zh-CN": {
      chart: "控制图", window: "时间范围", h1: "最近 1 小时", h8: "最近 8 小时", h24: "最近 24 小时", d7: "最近 7 天", d30: "最近 30 天",
      left: (l) => `仅绘制最新的点;${G.formatTime(l.before)} 之前的 ${l.points} 个点未绘制` +
        (l.subgroups !== null ? `(${l.subgroups} 个子组)` : "") + (l.lots !== null ? `(${l.lots} 个批次)` : "") +
        (l.mean !== null ? `:均值 ${G.formatNumber(l.mean)},最小 ${G.formatNumber(l.min)},最大 ${G.formatNumber(l.max)}` : ""),
      none: "还没有控制图:请通过 API 创建(POST /api/v1/apps/quality/charts)。",
      empty: "该时间范围内没有数据。", preview: "按此时间范围预览的控制限(尚未冻结)",
      version: "已冻结控制限,版本", violations: "未处理的判异", time: "时间", rules: "判异准则",
      value: "数值", ack: "确认", acked: "已确认", nothing: "没有未处理的判异。",
      centre: "CL", ucl: "UCL", lcl: "LCL", points: "个点", marked: "个点触发判异准则",
    },
  };
  const T = TEXT[LANG] || TEXT.en;
  const BASE = "/api/v1/apps/quality";

  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) n.setAttribute(k, String(v));
    for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return n;
  }

  /* One control chart panel: line with limits, zones and coloured violations. */
  function panel(line, sigma, marks, title, height) {
    const W = 900, H = height, L = 56, R = 90, TOP = 18, B = 22;
    const pts = line.points.map((v) => (v === null ? NaN : v));
    const all = [...pts, ...line.ucl, ...line.lcl].filter((v) => v !== null && Number.isFinite(v));
    let lo = Math.min(...all), hi = Math.max(...all);
    if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
    const pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    const n = pts.length;
    const x = (i) => L + (n <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
    const y = (v) => TOP + ((hi - v) * (H - TOP - B)) / (hi - lo);
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "spc-chart", role: "img", "aria-label": title });
    g.append(svg("text", { x: 4, y: 12, "font-size": 12, fill: "#333" }, title));
    if (sigma) {
      const band = (k, cls) => {
        const top = line.cl.map((c, i) => `${x(i)},${y(c + k * (sigma[i] || 0))}`);
        const bot = line.cl.map((c, i) => `${x(i)},${y(c - k * (sigma[i] || 0))}`).reverse();
        g.append(svg("polygon", { points: [...top, ...bot].join(" "), fill: cls, stroke: "none" }));
      };
      band(2, "rgba(255,193,7,0.12)");
      band(1, "rgba(40,167,69,0.12)");
    }
    const path = (vals, attrs) => {
      const d = vals.map((v, i) => (v === null || !Number.isFinite(v) ? null : `${x(i)},${y(v)}`)).filter(Boolean);
      if (d.length) g.append(svg("polyline", { points: d.join(" "), fill: "none", ...attrs }));
    };
    path(line.cl, { stroke: "#2b8a3e", "stroke-width": 1.5 });
    path(line.ucl, { stroke: "#c92a2a", "stroke-width": 1.2, "stroke-dasharray": "6 4" });
    path(line.lcl, { stroke: "#c92a2a", "stroke-width": 1.2, "stroke-dasharray": "6 4" });
    const last = n - 1;
    for (const [label, arr, color] of [[T.ucl, line.ucl, "#c92a2a"], [T.centre, line.cl, "#2b8a3e"], [T.lcl, line.lcl, "#c92a2a"]]) {
      if (arr.length && arr[last] !== null) {
        g.append(svg("text", { x: W - R + 4, y: y(arr[last]) + 4, "font-size": 11, fill: color },
          `${label} ${G.formatNumber(arr[last])}`));
      }
    }
    path(pts, { stroke: "#0f5fa8", "stroke-width": 1.2 });
    const bad = new Map((marks || []).map((m) => [m.index, m.rules]));
    pts.forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      const rules = bad.get(i);
      const dot = svg("circle", { cx: x(i), cy: y(v), r: rules ? 4.5 : 2.5, fill: rules ? "#e03131" : "#0f5fa8",
        class: rules ? "spc-violation" : "spc-point", "data-index": i });
      dot.append(svg("title", {}, `${G.formatNumber(v)}${rules ? " — " + rules.join(", ") : ""}`));
      g.append(dot);
    });
    g.append(svg("text", { x: 4, y: y(hi - pad) + 4, "font-size": 10, fill: "#666" }, G.formatNumber(hi - pad)));
    g.append(svg("text", { x: 4, y: y(lo + pad) + 4, "font-size": 10, fill: "#666" }, G.formatNumber(lo + pad)));
    return g;
  }

  async function ackViolation(chart, v, button) {
    button.disabled = true;
    try {
      const alarms = G.items(await api("GET", "/api/v1/alarms?active=false"));
      const alarm = alarms.find((a) => a.name === "SPC " + chart.name && /unack/.test(a.state || ""));
      if (alarm) await api("POST", `/api/v1/alarms/${alarm.rule_id}/ack`);
      await api("POST", `${BASE}/violations/${v.id}/ack`);
      button.textContent = T.acked;
    } catch (err) {
      button.disabled = false;
      G.flash("error", G.errorMessage(err));
    }
  }

  G.pages["app:quality/charts"] = async function () {
    const root = document.getElementById("gy-app-root");
    const charts = G.items(await api("GET", `${BASE}/charts`));
    if (!charts.length) {
      root.replaceChildren(el("p", { class: "muted", id: "spc-none" }, T.none));
      return;
    }
    const pick = el("select", { id: "spc-chart" }, charts.map((c) => el("option", { value: c.id }, `${c.name} (${c.kind})`)));
    const win = el("select", { id: "spc-window" },
      el("option", { value: 1 }, T.h1), el("option", { value: 8 }, T.h8), el("option", { value: 24, selected: true }, T.h24),
      el("option", { value: 168 }, T.d7), el("option", { value: 720 }, T.d30));
    const head = el("p", { id: "spc-status", class: "muted" });
    const note = el("p", { id: "spc-left-out", class: "muted" });
    const plot = el("div", { id: "spc-plot" });
    const list = el("div", { id: "spc-violations" });
    root.replaceChildren(
      el("div", { class: "toolbar" }, el("label", null, T.chart, " ", pick), " ", el("label", null, T.window, " ", win)),
      head, note, plot, el("h3", null, T.violations), list,
    );
    async function draw() {
      const chart = charts.find((c) => c.id === pick.value);
      const end = new Date();
      const start = new Date(end.getTime() - Number(win.value) * 3600e3);
      const q = new URLSearchParams({ start: start.toISOString(), end: new Date(end.getTime() + 1000).toISOString() });
      const d = await api("GET", `${BASE}/charts/${chart.id}/data?${q}`);
      note.textContent = d.left_out ? T.left(d.left_out) : "";
      if (d.empty) {
        head.textContent = T.empty;
        plot.replaceChildren(el("p", { class: "muted", id: "spc-empty" }, d.message || T.empty));
      } else {
        const lim = d.limits || {};
        head.textContent = `${lim.preview ? T.preview : T.version + " " + lim.version} · ${d.primary.points.length} ${T.points}` +
          ` · ${d.violations.length} ${T.marked}`;
        const kids = [panel(d.primary, d.sigma, d.violations, chart.kind.toUpperCase().replace("_", "-"), 300)];
        if (d.secondary) kids.push(panel(d.secondary, null, [], chart.kind === "xbar_s" ? "S" : chart.kind === "i_mr" ? "MR" : "R", 170));
        plot.replaceChildren(...kids);
      }
      const open = G.items(await api("GET", `${BASE}/violations?state=open&chart_id=${chart.id}`));
      if (!open.length) {
        list.replaceChildren(el("p", { class: "muted" }, T.nothing));
      } else {
        const rows = open.map((v) => {
          const b = el("button", { class: "btn btn-small spc-ack", type: "button" }, T.ack);
          b.addEventListener("click", () => ackViolation(chart, v, b));
          return el("tr", null, el("td", null, G.formatTime(v.ts)), el("td", null, v.rules), el("td", null, G.formatNumber(v.value)), el("td", null, b));
        });
        list.replaceChildren(el("table", { class: "table" },
          el("thead", null, el("tr", null, el("th", null, T.time), el("th", null, T.rules), el("th", null, T.value), el("th", null, ""))),
          el("tbody", null, rows)));
      }
    }
    pick.addEventListener("change", draw);
    win.addEventListener("change", draw);
    await draw();
    setInterval(() => draw().catch(() => {}), 3000);
  };
})();
