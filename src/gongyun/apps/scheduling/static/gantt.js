/* Scheduling app: Gantt chart (by machine or by order, zoom, critical path, late orders, repair diff),
 * solve progress, accept/reject of proposals. Inline SVG, text in English and 简体中文. */
(function () {
  "use strict";
  const API = "/api/v1/apps/scheduling";
  const TEXT = {
    en: {
      title: "Scheduling", solve: "Solve", solving: "Solving…", version: "Version", byMachine: "By machine",
      byOrder: "By order", zoomIn: "Zoom in", zoomOut: "Zoom out", accept: "Accept", reject: "Reject",
      repair: "Machine down → propose repair", none: "No schedule yet: add machines and orders, then Solve.",
      objective: "Objective", bound: "Bound", gap: "Gap", makespan: "Makespan (min)", status: "Status",
      kind: "Kind", late: "Late orders", critical: "Critical path", changes: "Changes", moved: "Moved",
      shift: "Total shift (min)", progress: "Solve progress", best: "best", lb: "bound", legendLate: "late order",
      legendCrit: "critical path", legendOld: "before the repair", legendDown: "downtime", reason: "Reason",
      proposed: "proposed", published: "published", rejected: "rejected", superseded: "superseded",
      solveKind: "solve", repairKind: "repair", minutes: "min", obj_makespan: "makespan",
      obj_tardiness: "weighted tardiness", obj_weighted: "weighted makespan and tardiness",
    },
    "zh-CN": {
      title: "智能排产", solve: "排产", solving: "求解中…", version: "版本", byMachine: "按设备", byOrder: "按订单",
      zoomIn: "放大", zoomOut: "缩小", accept: "接受", reject: "拒绝", repair: "设备停机 → 生成重排方案",
      none: "尚无排产：请先添加设备和订单，然后点击排产。", objective: "目标值", bound: "下界", gap: "差距",
      makespan: "完工时间（分钟）", status: "状态", kind: "类型", late: "延期订单", critical: "关键路径",
      changes: "变更", moved: "移动工序数", shift: "总偏移（分钟）", progress: "求解进度", best: "最优", lb: "下界",
      legendLate: "延期订单", legendCrit: "关键路径", legendOld: "重排前位置", legendDown: "停机", reason: "原因",
      proposed: "待审批", published: "已发布", rejected: "已拒绝", superseded: "已替代", solveKind: "排产",
      repairKind: "重排", minutes: "分钟", obj_makespan: "完工时间", obj_tardiness: "加权拖期",
      obj_weighted: "完工时间与拖期加权",
    },
  };
  const SVGNS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  const hues = new Map();
  function hue(order) {
    if (!hues.has(order)) hues.set(order, Math.round((hues.size * 137.5) % 360));
    return hues.get(order);
  }

  window.Gongyun.pages["app:scheduling/gantt"] = async () => {
    const G = window.Gongyun;
    const L = TEXT[G.LANG] || TEXT.en;
    /* The console's CSP forbids style attributes: styles go through the CSSOM instead. */
    const el = (tag, attrs, ...children) => {
      const { style, ...rest } = attrs || {};
      const node = G.el(tag, rest, ...children);
      if (style) node.style.cssText = style;
      return node;
    };
    const root = document.getElementById("gy-app-root");
    const state = { view: "machine", zoom: 1, version: null, data: null, list: [] };
    const info = el("div", { class: "gy-sched-info", "data-testid": "sched-info" });
    const chart = el("div", { class: "gy-sched-chart", "data-testid": "sched-gantt", style: "overflow-x:auto" });
    const prog = el("div", { class: "gy-sched-progress", "data-testid": "sched-progress" });
    const message = el("p", { class: "gy-sched-message", role: "status" });
    const versions = el("select", { "aria-label": L.version, "data-testid": "sched-version", onchange: () => load(Number(versions.value)) });
    const machineSel = el("select", { "aria-label": L.repair, "data-testid": "sched-repair-machine" });
    const btn = (label, onclick, id) => el("button", { type: "button", class: "gy-button", onclick, "data-testid": id }, label);
    const solveBtn = btn(L.solve, () => solve(), "sched-solve");
    const acceptBtn = btn(L.accept, () => decide("accept"), "sched-accept");
    const rejectBtn = btn(L.reject, () => decide("reject"), "sched-reject");
    const toolbar = el(
      "div",
      { class: "gy-toolbar", style: "display:flex;gap:.5rem;flex-wrap:wrap;align-items:center" },
      solveBtn,
      el("label", null, L.version + " ", versions),
      btn(L.byMachine, () => { state.view = "machine"; draw(); }, "sched-by-machine"),
      btn(L.byOrder, () => { state.view = "order"; draw(); }, "sched-by-order"),
      btn(L.zoomIn, () => { state.zoom = Math.min(16, state.zoom * 1.5); draw(); }, "sched-zoom-in"),
      btn(L.zoomOut, () => { state.zoom = Math.max(0.25, state.zoom / 1.5); draw(); }, "sched-zoom-out"),
      acceptBtn,
      rejectBtn,
      el("span", { style: "margin-left:1rem" }, machineSel, " ", btn(L.repair, () => repair(), "sched-repair")),
    );
    root.replaceChildren(el("h1", null, L.title), toolbar, message, info, chart, el("h2", null, L.progress), prog);

    function fail(err) {
      message.textContent = (err && (err.detail || err.message)) || G.errorMessage(err);
    }

    async function refreshList() {
      state.list = await G.api("GET", API + "/schedules");
      versions.replaceChildren(
        ...state.list.map((v) => el("option", { value: v.version }, `v${v.version} · ${L[v.kind + "Kind"] || v.kind} · ${L[v.status] || v.status}`)),
      );
      const machines = await G.api("GET", API + "/machines");
      machineSel.replaceChildren(...machines.map((m) => el("option", { value: m.id }, m.name || m.id)));
    }

    async function load(version) {
      if (!version) {
        state.data = null;
        draw();
        return;
      }
      state.version = version;
      versions.value = String(version);
      state.data = await G.api("GET", `${API}/schedules/${version}`);
      draw();
    }

    async function solve() {
      solveBtn.disabled = true;
      message.textContent = L.solving;
      const poll = setInterval(drawProgress, 500);
      try {
        const v = await G.api("POST", API + "/solve");
        message.textContent = "";
        await refreshList();
        await load(v.version);
      } catch (err) {
        fail(err);
      } finally {
        clearInterval(poll);
        solveBtn.disabled = false;
        drawProgress();
      }
    }

    async function repair() {
      message.textContent = L.solving;
      try {
        const v = await G.api("POST", API + "/repair", { machine: machineSel.value });
        message.textContent = "";
        await refreshList();
        await load(v.version);
      } catch (err) {
        fail(err);
      }
      drawProgress();
    }

    async function decide(what) {
      if (!state.data) return;
      try {
        await G.api("POST", `${API}/schedules/${state.data.version}/${what}`);
        await refreshList();
        await load(state.data.version);
      } catch (err) {
        fail(err);
      }
    }

    function draw() {
      const d = state.data;
      if (!d) {
        info.replaceChildren(el("p", null, L.none));
        chart.replaceChildren();
        acceptBtn.disabled = rejectBtn.disabled = true;
        return;
      }
      acceptBtn.disabled = rejectBtn.disabled = d.status !== "proposed";
      const stab = d.stats && d.stats.stability;
      const rows = [
        [L.status, L[d.status] || d.status],
        [L.kind, L[d.kind + "Kind"] || d.kind],
        [L.objective, `${L["obj_" + d.objective] || d.objective} = ${d.value}`],
        [L.bound, d.bound === null ? "-" : d.bound],
        [L.gap, d.gap === null ? "-" : (100 * d.gap).toFixed(2) + " %"],
        [L.makespan, d.makespan],
        [L.late, d.late_orders.length ? d.late_orders.join(", ") : "0"],
        [L.reason, d.reason || "-"],
      ];
      if (stab) rows.push([L.moved, stab.moved], [L.shift, stab.total_shift], [L.changes, d.changes.length]);
      info.replaceChildren(
        el("dl", { class: "gy-sched-kv", style: "display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem" },
          rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", { style: "margin:0" }, String(v))])),
      );
      d.orders.forEach((o) => hue(o.id));
      const lanes = state.view === "machine" ? d.machines.map((m) => m.id) : d.orders.map((o) => o.id);
      const late = new Set(d.late_orders);
      const changed = new Map(d.changes.map((c) => [c.op, c]));
      const end = Math.max(1, d.makespan, ...d.changes.map((c) => (c.old_start || 0) + 1));
      const scale = (900 * state.zoom) / end;
      const left = 90;
      const rowH = 26;
      const width = left + end * scale + 20;
      const height = 30 + lanes.length * rowH;
      const g = svg("svg", { width, height, role: "img", "aria-label": L.title, "data-view": state.view, class: "gy-sched-svg" });
      const step = Math.max(1, Math.pow(10, Math.floor(Math.log10(end / 8))));
      for (let t = 0; t <= end; t += step * (end / step > 20 ? 5 : 1)) {
        const x = left + t * scale;
        g.append(svg("line", { x1: x, y1: 18, x2: x, y2: height, stroke: "#ddd" }), svg("text", { x, y: 12, "font-size": 10, "text-anchor": "middle" }, t));
      }
      lanes.forEach((lane, i) => {
        g.append(svg("text", { x: 4, y: 30 + i * rowH + 16, "font-size": 12 }, lane));
      });
      if (state.view === "machine") {
        d.machines.forEach((m, i) => {
          for (const [a, b] of m.unavailable) {
            g.append(svg("rect", { x: left + a * scale, y: 30 + i * rowH + 2, width: Math.max(1, (Math.min(b, end) - a) * scale), height: rowH - 4, fill: "#bbb", "fill-opacity": 0.5, class: "gy-down" }, svg("title", null, `${L.legendDown} ${a}–${b}`)));
          }
        });
      }
      const laneOf = (op) => lanes.indexOf(state.view === "machine" ? op.machine : op.order);
      for (const op of d.operations) {
        const c = changed.get(op.op);
        if (c && c.old_start !== null && c.old_start !== undefined) {
          const oldLane = lanes.indexOf(state.view === "machine" ? c.old_machine : op.order);
          if (oldLane >= 0) {
            g.append(svg("rect", { x: left + c.old_start * scale, y: 30 + oldLane * rowH + 4, width: Math.max(2, (op.end - op.start) * scale), height: rowH - 8, fill: "none", stroke: "#555", "stroke-dasharray": "3 2", class: "gy-old" }, svg("title", null, `${op.op} ${L.legendOld}: ${c.old_machine} @ ${c.old_start}`)));
          }
        }
      }
      for (const op of d.operations) {
        const i = laneOf(op);
        if (i < 0) continue;
        const isLate = late.has(op.order);
        const rect = svg("rect", {
          x: left + op.start * scale, y: 30 + i * rowH + 3, width: Math.max(2, (op.end - op.start) * scale), height: rowH - 6,
          fill: `hsl(${hue(op.order)},55%,${isLate ? 55 : 70}%)`, stroke: op.critical ? "#000" : isLate ? "#c00" : "#666",
          "stroke-width": op.critical ? 2.5 : isLate ? 2 : 0.5, class: ["gy-op", op.critical ? "gy-critical" : "", isLate ? "gy-late" : "", changed.has(op.op) ? "gy-moved" : ""].join(" ").trim(),
          "data-op": op.op,
        }, svg("title", null, `${op.op} · ${op.order} · ${op.machine} · ${op.start}–${op.end} ${L.minutes} · ${op.start_at}`));
        g.append(rect);
        if ((op.end - op.start) * scale > 36) {
          g.append(svg("text", { x: left + op.start * scale + 3, y: 30 + i * rowH + 17, "font-size": 10, "pointer-events": "none" }, state.view === "machine" ? op.order : op.machine));
        }
      }
      const legend = el("p", { class: "gy-sched-legend", style: "font-size:.85em" },
        el("span", { style: "border:2.5px solid #000;padding:0 .3em" }, L.legendCrit), " ",
        el("span", { style: "border:2px solid #c00;padding:0 .3em" }, L.legendLate), " ",
        el("span", { style: "border:1px dashed #555;padding:0 .3em" }, L.legendOld), " ",
        el("span", { style: "background:#ddd;padding:0 .3em" }, L.legendDown));
      chart.replaceChildren(g, legend);
    }

    async function drawProgress() {
      let p;
      try {
        p = await G.api("GET", API + "/progress");
      } catch (err) {
        return;
      }
      const pts = p.history.filter((h) => h.value !== null);
      if (!pts.length) {
        prog.replaceChildren();
        return;
      }
      const w = 420, h = 140, pad = 30;
      const tmax = Math.max(0.1, ...pts.map((x) => x.t));
      const vals = pts.flatMap((x) => [x.value, x.bound]).filter((v) => v !== null);
      const lo = Math.min(...vals), hi = Math.max(...vals, lo + 1);
      const X = (t) => pad + (t / tmax) * (w - 2 * pad);
      const Y = (v) => h - pad + ((lo - v) / (hi - lo)) * (h - 2 * pad);
      const line = (key, color) => svg("polyline", { fill: "none", stroke: color, "stroke-width": 2, points: pts.filter((x) => x[key] !== null).map((x) => `${X(x.t)},${Y(x[key])}`).join(" ") });
      const last = pts[pts.length - 1];
      prog.replaceChildren(
        svg("svg", { width: w, height: h, role: "img", "aria-label": L.progress },
          svg("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, stroke: "#999" }),
          line("value", "#1565c0"), line("bound", "#2e7d32"),
          svg("text", { x: pad, y: 12, "font-size": 11 }, `${L.best} ${last.value} · ${L.lb} ${last.bound} · ${last.t}s`)),
      );
    }

    try {
      await refreshList();
      const pub = state.list.find((v) => v.status === "published");
      await load(pub ? pub.version : state.list.length ? state.list[0].version : null);
      drawProgress();
    } catch (err) {
      fail(err);
    }
  };
})();
