/* Maintenance app pages: fleet health (sortable, coloured), one equipment (score and health trends
 * with the anomaly band, RUL with its interval, likely fault, work orders), the model registry
 * (activate, roll back) and work orders (assign, start, close with notes). English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const NS = "http://www.w3.org/2000/svg";
  const BASE = "/api/v1/apps/maintenance";
  const TEXT = {
    en: {
      fleet: "Fleet health", equipment: "Equipment", path: "Asset path", health: "Health", score: "Anomaly score",
      rul: "RUL", fault: "Likely fault", updated: "Updated", groups: "Roll-up by line, area and site",
      worst: "Worst", weighted: "Weighted", count: "Equipment", none: "No equipment is watched yet: train a detector (POST /api/v1/apps/maintenance/detectors).",
      contributors: "Top contributors", trend: "Last hour", band: "anomaly above 1", orders: "Work orders",
      models: "Model registry", kind: "Kind", version: "Version", algorithm: "Algorithm", active: "Active",
      metrics: "Metrics", by: "Trained by", at: "Trained at", activate: "Activate", rollback: "Roll back",
      state: "State", title: "Title", reason: "Reason", assignee: "Assignee", notes: "Notes", label: "Found (label)",
      assign: "Assign to me", start: "Start", close: "Close", cancel: "Cancel", noOrders: "No work orders.",
      noModels: "No models yet.", interval: "interval", fleetWide: "fleet", back: "Fleet", yes: "yes", no: "",
      open: "open", assigned: "assigned", in_progress: "in progress", done: "done", cancelled: "cancelled",
      closeNotes: "What was found?", closeLabel: "Fault found (e.g. bearing_wear)", noData: "No scores yet.",
      confidence: "confidence", train: "Train an anomaly detector", tags: "Tags (device/tag, comma separated)",
      baseline: "Baseline: the last N minutes of normal operation", submit: "Train and activate",
      events: "Active alarms", noEvents: "No active alarm.", value: "Value",
    },
    "zh-CN": {
      fleet: "设备健康总览", equipment: "设备", path: "资产路径", health: "健康指数", score: "异常评分",
      rul: "剩余寿命", fault: "可能故障", updated: "更新时间", groups: "按产线、区域、工厂汇总",
      worst: "最差", weighted: "加权", count: "设备数", none: "尚未监视任何设备:请先训练检测器(POST /api/v1/apps/maintenance/detectors)。",
      contributors: "主要贡献变量", trend: "最近 1 小时", band: "高于 1 为异常", orders: "维修工单",
      models: "模型注册表", kind: "类型", version: "版本", algorithm: "算法", active: "当前启用",
      metrics: "指标", by: "训练人", at: "训练时间", activate: "启用", rollback: "回滚",
      state: "状态", title: "标题", reason: "原因", assignee: "负责人", notes: "备注", label: "发现(标签)",
      assign: "指派给我", start: "开始", close: "关闭", cancel: "取消", noOrders: "没有工单。",
      noModels: "还没有模型。", interval: "区间", fleetWide: "全机群", back: "总览", yes: "是", no: "",
      open: "待处理", assigned: "已指派", in_progress: "处理中", done: "已完成", cancelled: "已取消",
      closeNotes: "发现了什么?", closeLabel: "发现的故障(如 bearing_wear)", noData: "还没有评分。",
      confidence: "置信度", train: "训练异常检测器", tags: "位号(设备/位号,逗号分隔)",
      baseline: "基线:最近 N 分钟的正常运行数据", submit: "训练并启用",
      events: "活动告警", noEvents: "没有活动告警。", value: "数值",
    },
  };
  const T = TEXT[LANG] || TEXT.en;
  const root = () => document.getElementById("gy-app-root");
  const fmt = (v, d) => (v === null || v === undefined ? "—" : G.formatNumber(v, d === undefined ? 1 : d));
  const when = (v) => (v ? G.formatDate(v) : "—");

  function healthBadge(h) {
    const kind = h === null || h === undefined ? "muted" : h >= 70 ? "ok" : h >= 40 ? "warn" : "bad";
    return el("span", { class: "badge badge-" + kind, "data-health": h === null ? "" : String(h) }, fmt(h));
  }

  function nav(current) {
    const links = [["fleet", T.fleet], ["models", T.models], ["orders", T.orders]];
    return el("nav", { class: "tabs maint-tabs" }, links.map(([slug, text]) =>
      [el("a", { href: "/apps/maintenance/" + slug, class: slug === current ? "active" : null }, text), " · "]).flat().slice(0, -1));
  }

  function grid(columns, rows, empty) {
    if (!rows.length) return el("p", { class: "empty-row" }, empty);
    let sortKey = null, asc = true;
    const body = el("tbody");
    const draw = () => {
      const sorted = [...rows];
      if (sortKey) sorted.sort((a, b) => {
        const x = a[sortKey], y = b[sortKey];
        const c = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
        return asc ? c : -c;
      });
      body.replaceChildren(...sorted.map((r) => el("tr", null, columns.map((c) => el("td", null, c.render(r))))));
    };
    const head = el("tr", null, columns.map((c) => el("th", {
      scope: "col", class: c.key ? "sortable" : null,
      onclick: c.key ? () => { asc = sortKey === c.key ? !asc : true; sortKey = c.key; draw(); } : null,
    }, c.label)));
    draw();
    return el("table", { class: "table" }, el("thead", null, head), body);
  }

  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) n.setAttribute(k, String(v));
    for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return n;
  }

  /* A line chart; ``band`` shades values above it (the anomaly zone); ``lows``/``highs`` an interval. */
  function chart(points, title, band, fixed, lows, highs) {
    const W = 900, H = 180, L = 50, R = 20, TOP = 20, B = 22;
    if (!points.length) return el("p", { class: "empty-row" }, title + ": " + T.noData);
    const xs = points.map((p) => Date.parse(p.ts)), ys = points.map((p) => p.value);
    let lo = fixed ? fixed[0] : Math.min(...ys, band === null ? Infinity : 0);
    let hi = fixed ? fixed[1] : Math.max(...ys, band === null ? -Infinity : band * 1.5);
    if (!(hi > lo)) { hi = lo + 1; }
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    const x = (t) => L + ((t - x0) * (W - L - R)) / (x1 - x0);
    const y = (v) => TOP + ((hi - Math.min(hi, Math.max(lo, v))) * (H - TOP - B)) / (hi - lo);
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "maint-chart", role: "img", "aria-label": title });
    g.append(svg("text", { x: 4, y: 14, "font-size": 12, fill: "#333" }, title));
    if (band !== null && band < hi) {
      g.append(svg("rect", { x: L, y: TOP, width: W - L - R, height: y(band) - TOP, fill: "rgba(220,53,69,0.12)" }));
      g.append(svg("text", { x: W - R - 4, y: TOP + 12, "font-size": 11, fill: "#a33", "text-anchor": "end" }, T.band));
    }
    g.append(svg("line", { x1: L, x2: L, y1: TOP, y2: H - B, stroke: "#999" }));
    g.append(svg("text", { x: L - 4, y: y(hi) + 4, "font-size": 10, "text-anchor": "end" }, fmt(hi)));
    g.append(svg("text", { x: L - 4, y: y(lo), "font-size": 10, "text-anchor": "end" }, fmt(lo)));
    if (lows && highs && lows.length && lows.length === highs.length) {
      const top = highs.map((p) => `${x(Date.parse(p.ts))},${y(p.value)}`);
      const bot = lows.map((p) => `${x(Date.parse(p.ts))},${y(p.value)}`).reverse();
      g.append(svg("polygon", { points: [...top, ...bot].join(" "), fill: "rgba(13,110,253,0.15)", stroke: "none", class: "maint-interval" }));
    }
    g.append(svg("polyline", {
      points: points.map((p, i) => `${x(xs[i])},${y(ys[i])}`).join(" "), fill: "none", stroke: "#0d6efd", "stroke-width": 1.5,
    }));
    return g;
  }

  async function series(tag) {
    const end = new Date(), start = new Date(end.getTime() - 3600e3);
    const q = new URLSearchParams({ tag, start: start.toISOString(), end: end.toISOString() });
    try { return (await api("GET", "/api/v1/telemetry/raw?" + q)).points || []; } catch { return []; }
  }

  function faultText(e) {
    return e.fault ? `${e.fault} (${T.confidence} ${fmt(e.fault_confidence * 100, 0)} %)` : "—";
  }

  async function fleet() {
    const data = await api("GET", BASE + "/equipment");
    const cols = [
      { key: "name", label: T.equipment, render: (e) => el("a", { href: "/apps/maintenance/equipment?name=" + encodeURIComponent(e.name) }, e.name) },
      { key: "path", label: T.path, render: (e) => e.path || "—" },
      { key: "health", label: T.health, render: (e) => healthBadge(e.health) },
      { key: "score", label: T.score, render: (e) => fmt(e.score, 2) },
      { key: "rul", label: T.rul, render: (e) => (e.rul === null ? "—" : `${fmt(e.rul, 0)} [${fmt(e.rul_low, 0)}–${fmt(e.rul_high, 0)}]`) },
      { key: "fault", label: T.fault, render: faultText },
      { key: "updated_at", label: T.updated, render: (e) => when(e.updated_at) },
    ];
    const gcols = [
      { key: "path", label: T.path, render: (g) => g.path || "/" },
      { key: "worst", label: T.worst, render: (g) => el("span", null, healthBadge(g.worst), " ", g.worst_equipment || "") },
      { key: "weighted", label: T.weighted, render: (g) => healthBadge(g.weighted) },
      { key: "equipment", label: T.count, render: (g) => String(g.equipment) },
    ];
    root().replaceChildren(nav("fleet"), el("h2", null, T.fleet), grid(cols, data.equipment, T.none),
      el("h3", null, T.groups), grid(gcols, data.groups, "—"));
  }

  function ordersTable(orders, me, refresh) {
    const act = (o, state, extra) => async () => {
      await api("POST", `${BASE}/work-orders/${o.id}/transition`, { state, ...(extra || {}) });
      await refresh();
    };
    const actions = (o) => {
      const b = (text, fn, cls) => el("button", { type: "button", class: "btn btn-sm " + (cls || ""), onclick: fn, "data-action": text }, text);
      const out = [];
      if (o.state === "open" || o.state === "assigned") out.push(b(T.assign, act(o, "assigned", { assignee: me.username })));
      if (o.state === "open" || o.state === "assigned") out.push(b(T.start, act(o, "in_progress")));
      if (o.state === "in_progress") {
        const notes = el("input", { type: "text", name: "notes", placeholder: T.closeNotes, "aria-label": T.closeNotes });
        const label = el("input", { type: "text", name: "label", placeholder: T.closeLabel, "aria-label": T.closeLabel });
        out.push(notes, label, b(T.close, async () => act(o, "done", { notes: notes.value, label: label.value || null })()));
      }
      if (o.state !== "done" && o.state !== "cancelled") out.push(b(T.cancel, act(o, "cancelled"), "btn-secondary"));
      return el("span", { class: "actions" }, out);
    };
    const cols = [
      { key: "id", label: "#", render: (o) => String(o.id) },
      { key: "equipment", label: T.equipment, render: (o) => o.equipment },
      { key: "title", label: T.title, render: (o) => o.title },
      { key: "state", label: T.state, render: (o) => el("span", { class: "badge", "data-state": o.state }, T[o.state] || o.state) },
      { key: "assignee", label: T.assignee, render: (o) => o.assignee || "—" },
      { key: null, label: T.fault, render: (o) => {
        const f = (o.evidence || {}).likely_fault;
        return f ? `${f.fault} (${fmt(f.confidence * 100, 0)} %)` : "—";
      } },
      { key: "notes", label: T.notes, render: (o) => (o.notes ? `${o.notes}${o.label ? " [" + o.label + "]" : ""}` : "—") },
      { key: null, label: "", render: actions },
    ];
    return grid(cols, orders, T.noOrders);
  }

  async function equipment(me) {
    const name = new URLSearchParams(location.search).get("name") || "";
    const data = await api("GET", `${BASE}/equipment/${encodeURIComponent(name)}`);
    const e = data.equipment;
    const dev = name + "-maintenance";
    const [scores, health, rul, rulLow, rulHigh] = await Promise.all(
      ["anomaly_score", "health", "rul", "rul_low", "rul_high"].map((tag) => series(dev + "/" + tag)));
    let alarms = [];
    try {
      alarms = G.items(await api("GET", "/api/v1/alarms?active=true")).filter((a) => a.name.startsWith(name + " "));
    } catch { alarms = []; }
    const events = grid([
      { key: "name", label: T.title, render: (a) => a.name },
      { key: "state", label: T.state, render: (a) => el("span", { class: "badge", "data-alarm-state": a.state }, a.state) },
      { key: "value", label: T.value, render: (a) => fmt(a.value) },
    ], alarms, T.noEvents);
    const box = el("div");
    const refresh = async () => equipment(me);
    const contributors = (e.contributors || []).map((c) => el("li", null, `${c.tag}: ${fmt(c.share * 100, 0)} %`));
    box.append(
      nav(""), el("p", null, el("a", { href: "/apps/maintenance/fleet" }, "← " + T.back)),
      el("h2", null, `${T.equipment}: ${e.name}`),
      el("dl", { class: "facts" },
        el("dt", null, T.health), el("dd", null, healthBadge(e.health)),
        el("dt", null, T.score), el("dd", null, fmt(e.score, 2)),
        el("dt", null, T.rul), el("dd", null, e.rul === null ? "—" : `${fmt(e.rul, 0)} (${T.interval} ${fmt(e.rul_low, 0)}–${fmt(e.rul_high, 0)})`),
        el("dt", null, T.fault), el("dd", { id: "maint-fault" }, faultText(e)),
        el("dt", null, T.path), el("dd", null, e.path || "—")),
      el("h3", null, T.contributors), el("ul", null, contributors),
      el("h3", null, T.trend),
      chart(scores, T.score, 1.0, null),
      chart(health, T.health, null, [0, 100]),
      chart(rul, `${T.rul} (s, ${T.interval} 10–90 %)`, null, rul.length ? [0, Math.max(...rulHigh.map((p) => p.value), ...rul.map((p) => p.value))] : null, rulLow, rulHigh),
      el("h3", null, T.events), events,
      el("h3", null, T.orders), ordersTable(data.work_orders, me, refresh));
    root().replaceChildren(box);
  }

  async function models() {
    const rows = await api("GET", BASE + "/models");
    const refresh = () => models();
    const cols = [
      { key: "kind", label: T.kind, render: (m) => m.kind },
      { key: "equipment", label: T.equipment, render: (m) => m.equipment || T.fleetWide },
      { key: "version", label: T.version, render: (m) => String(m.version) },
      { key: "algorithm", label: T.algorithm, render: (m) => m.algorithm },
      { key: "active", label: T.active, render: (m) => (m.active ? el("span", { class: "badge badge-ok" }, T.yes) : "") },
      { key: null, label: T.metrics, render: (m) => {
        const x = (m.meta || {}).metrics;
        if (x) return `RMSE ${fmt(x.rmse, 2)} · MAE ${fmt(x.mae, 2)}`;
        const b = (m.meta || {}).baseline;
        return b ? `${b.points} pts` : "—";
      } },
      { key: "created_by", label: T.by, render: (m) => m.created_by },
      { key: "created_at", label: T.at, render: (m) => when(m.created_at) },
      { key: null, label: "", render: (m) => el("span", null,
        m.active ? el("button", { type: "button", class: "btn btn-sm btn-secondary", onclick: async () => {
          await api("POST", BASE + "/models/rollback", { kind: m.kind, equipment: m.equipment }); await refresh();
        } }, T.rollback)
          : el("button", { type: "button", class: "btn btn-sm", onclick: async () => {
            await api("POST", `${BASE}/models/${m.id}/activate`); await refresh();
          } }, T.activate)) },
    ];
    const status = el("p", { class: "form-status", role: "status" });
    const form = el("form", { class: "maint-train", onsubmit: async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const end = new Date(), start = new Date(end.getTime() - Number(data.get("minutes")) * 60e3);
      try {
        await api("POST", BASE + "/detectors", {
          equipment: String(data.get("equipment")).trim(),
          tags: String(data.get("tags")).split(",").map((x) => x.trim()).filter(Boolean),
          start: start.toISOString(), end: end.toISOString(),
        });
        await refresh();
      } catch (err) {
        status.textContent = err.problem && err.problem.detail ? err.problem.detail : G.errorMessage(err);
      }
    } },
    el("label", null, T.equipment, " ", el("input", { name: "equipment", required: true })), " ",
    el("label", null, T.tags, " ", el("input", { name: "tags", required: true, size: 50 })), " ",
    el("label", null, T.baseline, " ", el("input", { name: "minutes", type: "number", min: 1, value: 10, required: true })), " ",
    el("button", { type: "submit", class: "btn btn-sm" }, T.submit), status);
    root().replaceChildren(nav("models"), el("h2", null, T.models), grid(cols, rows, T.noModels), el("h3", null, T.train), form);
  }

  async function orders(me) {
    const rows = await api("GET", BASE + "/work-orders");
    root().replaceChildren(nav("orders"), el("h2", null, T.orders), ordersTable(rows, me, () => orders(me)));
  }

  G.pages["app:maintenance/fleet"] = fleet;
  G.pages["app:maintenance/equipment"] = equipment;
  G.pages["app:maintenance/models"] = models;
  G.pages["app:maintenance/orders"] = orders;
})();
