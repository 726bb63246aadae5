/* OEE app: losses (/apps/oee/losses): the Pareto of stop time by reason, machine, shift or loss
 * category over the last 7 days, and the stops without a reason for operators to code from the
 * tenant's reason tree (names in English and 简体中文). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const NS = "http://www.w3.org/2000/svg";
  const TEXT = {
    en: { by: "By", reason: "reason", machine: "machine", shift: "shift", loss: "loss category", pareto: "Loss Pareto (last 7 days)",
      uncodedTitle: "Stops without a reason", uncoded: "uncoded", start: "Start", duration: "Duration (s)", state: "State",
      code: "Code", save: "Save", none: "No uncoded stops.", empty: "No stops in the window.", choose: "— reason —", open: "ongoing",
      states: { idle: "idle", down_planned: "planned stop", down_unplanned: "unplanned stop", setup: "setup", unknown: "no data" } },
    "zh-CN": { by: "按", reason: "原因", machine: "设备", shift: "班次", loss: "损失类别", pareto: "损失帕累托图(最近 7 天)",
      uncodedTitle: "未填写原因的停机", uncoded: "未编码", start: "开始", duration: "时长(秒)", state: "状态",
      code: "原因", save: "保存", none: "没有未编码的停机。", empty: "该时间范围内没有停机。", choose: "— 选择原因 —", open: "进行中",
      states: { idle: "待机", down_planned: "计划停机", down_unplanned: "非计划停机", setup: "换型", unknown: "无数据" } },
  };
  const T = TEXT[LANG] || TEXT.en;
  const BASE = "/api/v1/apps/oee";

  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return n;
  }

  function paretoChart(items) {
    const W = 820, H = 300, L = 50, R = 40, TOP = 14, B = 70;
    const n = items.length, top = Math.max(...items.map((i) => i.seconds)) || 1;
    const bw = (W - L - R) / Math.max(n, 1);
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, id: "oee-pareto", role: "img" });
    const y = (v) => TOP + ((top - v) * (H - TOP - B)) / top;
    const yc = (f) => TOP + (1 - f) * (H - TOP - B);
    items.forEach((it, i) => {
      const x = L + i * bw;
      const r = svg("rect", { x: x + 4, y: y(it.seconds), width: bw - 8, height: y(0) - y(it.seconds), fill: it.key === "uncoded" ? "#adb5bd" : "#e8590c", "data-key": it.key });
      r.append(svg("title", {}, `${it.name || it.key}: ${Math.round(it.seconds)} s (${(100 * it.share).toFixed(1)} %)`));
      g.append(r);
      g.append(svg("text", { x: x + bw / 2, y: H - B + 14, "font-size": 11, "text-anchor": "middle" }, it.key === "uncoded" ? T.uncoded : it.name || it.key));
    });
    g.append(svg("polyline", { points: items.map((it, i) => `${L + i * bw + bw / 2},${yc(it.cumulative)}`).join(" "), fill: "none", stroke: "#1864ab", "stroke-width": 2 }));
    g.append(svg("text", { x: W - R + 2, y: yc(1) + 4, "font-size": 10, fill: "#1864ab" }, "100 %"));
    return g;
  }

  G.pages["app:oee/losses"] = async function () {
    const root = document.getElementById("gy-app-root");
    const by = el("select", { id: "oee-by" }, ["reason", "machine", "shift", "loss"].map((k) => el("option", { value: k }, T[k])));
    const chart = el("div", { id: "oee-pareto-box" });
    const list = el("div", { id: "oee-uncoded" });
    root.replaceChildren(el("h3", null, T.pareto), el("label", null, T.by, " ", by), chart, el("h3", null, T.uncodedTitle), list);
    const reasons = G.items(await api("GET", `${BASE}/reasons`));
    const machines = Object.fromEntries(G.items(await api("GET", `${BASE}/machines`)).map((m) => [m.id, m.name]));
    async function draw() {
      const p = await api("GET", `${BASE}/pareto?by=${by.value}&lang=${encodeURIComponent(LANG)}`);
      chart.replaceChildren(p.items.length ? paretoChart(p.items) : el("p", { class: "muted" }, T.empty));
      const stops = G.items(await api("GET", `${BASE}/stops?uncoded=true`));
      if (!stops.length) { list.replaceChildren(el("p", { class: "muted" }, T.none)); return; }
      const rows = stops.map((s) => {
        const sel = el("select", { class: "oee-reason" }, el("option", { value: "" }, T.choose),
          reasons.map((r) => el("option", { value: r.code }, (LANG === "zh-CN" ? r.name_zh : r.name_en) + " (" + r.code + ")")));
        const save = el("button", { class: "btn btn-small oee-code", type: "button" }, T.save);
        save.addEventListener("click", async () => {
          if (!sel.value) return;
          try {
            await api("POST", `${BASE}/stops/${s.id}/code`, { reason: sel.value });
            await draw();
          } catch (err) { G.flash("error", G.errorMessage(err)); }
        });
        return el("tr", { "data-stop": s.id }, el("td", null, machines[s.machine_id] || s.machine_id), el("td", null, G.formatTime(s.start)),
          el("td", { class: "num" }, s.duration_s === undefined ? T.open : Math.round(s.duration_s)), el("td", null, T.states[s.state] || s.state), el("td", null, sel, " ", save));
      });
      list.replaceChildren(el("table", { class: "table" }, el("thead", null, el("tr", null, el("th", null, ""), el("th", null, T.start),
        el("th", null, T.duration), el("th", null, T.state), el("th", null, T.code))), el("tbody", null, rows)));
    }
    by.addEventListener("change", draw);
    await draw();
  };
})();
