/* Scheduling app: the operator's dispatch list of one machine, from the published schedule. */
(function () {
  "use strict";
  const API = "/api/v1/apps/scheduling";
  const TEXT = {
    en: { title: "Dispatch list", machine: "Machine", op: "Operation", order: "Order", product: "Product", lot: "Lot",
      start: "Start", end: "End", state: "State", done: "done", running: "running", queued: "queued",
      none: "No published schedule yet.", version: "Published version" },
    "zh-CN": { title: "派工单", machine: "设备", op: "工序", order: "订单", product: "产品", lot: "批次", start: "开始",
      end: "结束", state: "状态", done: "已完成", running: "进行中", queued: "排队", none: "尚无已发布的排产。",
      version: "已发布版本" },
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

    async function show() {
      try {
        const d = await G.api("GET", `${API}/dispatch/${encodeURIComponent(pick.value)}`);
        const head = el("tr", null, [L.op, L.order, L.product, L.lot, L.start, L.end, L.state].map((h) => el("th", null, h)));
        const rows = d.operations.map((o) =>
          el("tr", { class: "gy-dispatch-" + o.state }, el("td", null, o.op), el("td", null, o.order), el("td", null, o.product || ""),
            el("td", null, o.lot || ""), el("td", null, when(o.start_at)), el("td", null, when(o.end_at)), el("td", null, L[o.state] || o.state)));
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
