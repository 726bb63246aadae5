/* Quality app: the capability report (/apps/quality/capability): histogram with the fitted normal
 * curve and the specification limits, Cp/Cpk/Pp/Ppk/Cpm with confidence intervals, expected ppm
 * out of specification, and the normality check that flags the indices. English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const NS = "http://www.w3.org/2000/svg";
  const TEXT = {
    en: { chart: "Chart", index: "Index", value: "Value", ci: "95 % interval", none: "No charts of measurements yet.",
      empty: "No data in the window.", ppm: "Expected out of specification (ppm)", within: "within", overall: "overall",
      normal: "Normality (Anderson-Darling)", ok: "not rejected", rejected: "rejected: the indices assume a normal process",
      n: "Measurements", mean: "Mean", sigma: "σ within / overall" },
    "zh-CN": { chart: "控制图", index: "指数", value: "数值", ci: "95% 置信区间", none: "还没有计量型控制图。",
      empty: "该时间范围内没有数据。", ppm: "预计超出规格(ppm)", within: "组内", overall: "整体",
      normal: "正态性检验(Anderson-Darling)", ok: "未拒绝", rejected: "已拒绝:各能力指数以正态过程为前提",
      n: "测量值个数", mean: "均值", sigma: "σ 组内 / 整体" },
  };
  const T = TEXT[LANG] || TEXT.en;
  const BASE = "/api/v1/apps/quality";
  const NAMES = { cp: "Cp", cpk: "Cpk", pp: "Pp", ppk: "Ppk", cpm: "Cpm" };
  const f = (v) => (v === null || v === undefined ? "—" : G.formatNumber(v, 3));

  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return n;
  }

  function histogram(c) {
    const h = c.histogram, W = 800, H = 280, L = 40, R = 20, TOP = 16, B = 24;
    const xs = [...h.edges, ...h.curve_x, c.lsl, c.usl].filter((v) => v !== null && v !== undefined);
    const lo = Math.min(...xs), hi = Math.max(...xs);
    const top = Math.max(...h.counts, ...h.curve_y) * 1.1 || 1;
    const x = (v) => L + ((v - lo) * (W - L - R)) / (hi - lo || 1);
    const y = (v) => TOP + ((top - v) * (H - TOP - B)) / top;
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, id: "cap-histogram", role: "img" });
    h.counts.forEach((n, i) => g.append(svg("rect", { x: x(h.edges[i]), y: y(n), width: Math.max(1, x(h.edges[i + 1]) - x(h.edges[i]) - 1),
      height: y(0) - y(n), fill: "#74c0fc" })));
    g.append(svg("polyline", { points: h.curve_x.map((v, i) => `${x(v)},${y(h.curve_y[i])}`).join(" "), fill: "none", stroke: "#1864ab", "stroke-width": 2 }));
    for (const [label, v] of [["LSL", c.lsl], ["USL", c.usl], ["T", c.target]]) {
      if (v === null || v === undefined) continue;
      g.append(svg("line", { x1: x(v), x2: x(v), y1: TOP, y2: H - B, stroke: label === "T" ? "#2b8a3e" : "#c92a2a", "stroke-dasharray": "5 4" }));
      g.append(svg("text", { x: x(v) + 3, y: TOP + 10, "font-size": 11, fill: "#333" }, `${label} ${G.formatNumber(v)}`));
    }
    g.append(svg("text", { x: L, y: H - 6, "font-size": 10, fill: "#666" }, G.formatNumber(lo)));
    g.append(svg("text", { x: W - R - 40, y: H - 6, "font-size": 10, fill: "#666" }, G.formatNumber(hi)));
    return g;
  }

  G.pages["app:quality/capability"] = async function () {
    const root = document.getElementById("gy-app-root");
    const charts = G.items(await api("GET", `${BASE}/charts`)).filter((c) => ["xbar_r", "xbar_s", "i_mr", "ewma", "cusum"].includes(c.kind));
    if (!charts.length) { root.replaceChildren(el("p", { class: "muted" }, T.none)); return; }
    const pick = el("select", { id: "cap-chart" }, charts.map((c) => el("option", { value: c.id }, c.name)));
    const out = el("div", { id: "cap-report" });
    root.replaceChildren(el("label", null, T.chart, " ", pick), out);
    async function draw() {
      const c = await api("GET", `${BASE}/charts/${pick.value}/capability`);
      if (c.empty) { out.replaceChildren(el("p", { class: "muted" }, T.empty)); return; }
      const rows = ["cp", "cpk", "pp", "ppk", "cpm"].map((k) => el("tr", { class: c.flagged ? "flagged" : "" },
        el("td", null, NAMES[k] + (c.flagged ? " ⚠" : "")),
        el("td", { class: "num" }, f(c[k].value)), el("td", { class: "num" }, `${f(c[k].low)} – ${f(c[k].high)}`)));
      out.replaceChildren(
        histogram(c),
        el("table", { class: "table", id: "cap-indices" }, el("thead", null, el("tr", null, el("th", null, T.index), el("th", null, T.value), el("th", null, T.ci))), el("tbody", null, rows)),
        el("p", null, `${T.n}: ${c.n} · ${T.mean}: ${f(c.mean)} · ${T.sigma}: ${f(c.sigma_within)} / ${f(c.sigma_overall)}`),
        el("p", null, `${T.ppm}: ${T.within} ${G.formatNumber(c.ppm_within, 1)} · ${T.overall} ${G.formatNumber(c.ppm_overall, 1)}`),
        el("p", { id: "cap-normality", class: c.normal ? "" : "warn" },
          `${T.normal}: A² = ${f(c.normality.statistic)}, p = ${f(c.normality.p_value)} — ${c.normal ? T.ok : T.rejected}`),
      );
    }
    pick.addEventListener("change", draw);
    await draw();
  };
})();
