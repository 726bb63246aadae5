/* Scheduling app: the operator's dispatch list of one machine, from the published schedule.
   Operators report an operation started, finished or running late (with the minutes it still
   needs); a late report past the planned end proposes a repair for the planner. */
(function () {
  "use strict";
  const API = "/api/v1/apps/scheduling";
  const TEXT = {
    en: { title: "Dispatch list", machine: "Machine", op: "Operation", order: "Order", product: "Product", lot: "Lot",
      start: "Start", end: "End", state: "State", done: "done", running: "running", queued: "queued",
      none: "No published schedule yet.", version: "Published version", report: "Report", startBtn: "Start",
      finishBtn: "Finish", lateBtn: "Late…", lateAsk: "Minutes still needed from now:", late: "late",
      expected: "expected end", reported: "reported", repairProposed: "Repair proposed for the planner: version" },
    "zh-CN": { title: "派工单", machine: "设备", op: "工序", order: "订单", product: "产品", lot: "批次", start: "开始",
      end: "结束", state: "状态", done: "已完成", running: "进行中", queued: "排队", none: "尚无已发布的排产。",
      version: "已发布版本", report: "报工", startBtn: "开工", finishBtn: "完工", lateBtn: "延误…",
      lateAsk: "从现在起还需要多少分钟：", late: "延误", expected: "预计结束", reported: "已报工",
      repairProposed: "已为计划员生成重排方案：版本" },
  };

  window.Gongyun.pages["app:scheduling/dispatch"] = async () => {
    const G = window.Gongyun;
    const L = TEXT[G.LANG] || TEXT.en;
    const el = G.el;
    const root = document.getElementById("gy-app-root");
    const pick = el("select", { "aria-label": L.machine, "data-testid": "dispatch-machine", onchange: () => show() });
    const body = el("div", { "data-testid": "dispatch-list" });
    root.replaceChildren(el("h1", null, L.title), el("label", null, L.machine + " ", pick), body);
    const when = (iso) => new Date(iso).toLocaleString(G.LANG, { hour12: false });

    async function send(o, event) {
      const payload = { event };
      if (event === "late") {
        const more = Number(window.prompt(L.lateAsk, "15"));
        if (!(more > 0)) return;
        payload.expected_end = new Date(Date.now() + more * 60000).toISOString();
      }
      try {
        const r = await G.api("POST", `${API}/dispatch/${encodeURIComponent(pick.value)}/${encodeURIComponent(o.op)}`, payload);
        if (r.repair_version) G.flash("info", `${L.repairProposed} v${r.repair_version}`);
      } catch (err) {
        G.flash("error", G.errorMessage(err));
      }
      show();
    }

    function actions(o) {
      const btn = (label, event) => el("button", { type: "button", "data-testid": `dispatch-${event}`, onclick: () => send(o, event) }, label);
      if (o.finished_at) return el("td", null, "");
      const out = [];
      if (!o.started_at) out.push(btn(L.startBtn, "start"));
      out.push(btn(L.finishBtn, "finish"), btn(L.lateBtn, "late"));
      return el("td", null, out);
    }

    function stateCell(o) {
      const parts = [L[o.state] || o.state];
      if (o.reported) parts.push(`(${L.reported})`);
      if (o.late) parts.push(`· ${L.late}, ${L.expected} ${when(o.expected_end)}`);
      return el("td", o.late ? { class: "gy-late" } : null, parts.join(" "));
    }

    async function show() {
      try {
        const d = await G.api("GET", `${API}/dispatch/${encodeURIComponent(pick.value)}`);
        const head = el("tr", null, [L.op, L.order, L.product, L.lot, L.start, L.end, L.state, L.report].map((h) => el("th", null, h)));
        const rows = d.operations.map((o) =>
          el("tr", { class: "gy-dispatch-" + o.state, "data-op": o.op }, el("td", null, o.op), el("td", null, o.order), el("td", null, o.product || ""),
            el("td", null, o.lot || ""), el("td", null, when(o.start_at)), el("td", null, when(o.end_at)), stateCell(o), actions(o)));
        body.replaceChildren(el("p", null, `${L.version}: v${d.version}`), el("table", { class: "gy-table" }, el("thead", null, head), el("tbody", null, rows)));
      } catch (err) {
        body.replaceChildren(el("p", null, err && err.status === 404 ? L.none : G.errorMessage(err)));
      }
    }

    const machines = await G.api("GET", API + "/machines");
    pick.replaceChildren(...machines.map((m) => el("option", { value: m.id }, m.name || m.id)));
    if (machines.length) show();
    else body.replaceChildren(el("p", null, L.none));
  };
})();
