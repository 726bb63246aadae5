/* Trace app: trace graph (backward / forward, by depth), recall campaigns and the recall inbox.
 * Inline SVG, text in English and 简体中文. */
(function () {
  "use strict";
  const API = "/api/v1/apps/trace";
  const TEXT = {
    en: {
      title: "Traceability", item: "Item (id, Digital Link, EPC URI)", backward: "Backward (what went into it)",
      forward: "Forward (what was made of it)", depth: "Depth", trace: "Trace", items: "items", kind: "Kind",
      key: "Identifier", status: "Status", level: "Depth", recalls: "Recall campaigns", startRecall: "Start recall",
      recallName: "Campaign name", reason: "Reason", affected: "Affected", notices: "Notices", acked: "acknowledged",
      pending: "waiting", inbox: "Recall notices received", ack: "Acknowledge and recall here", none: "Nothing yet.",
      frozenBatches: "Affected batches", receiver: "Receiver", graph: "Trace graph", truncated: "(truncated)",
      material_lot: "material lot", batch: "batch", serial: "serial", pallet: "pallet", shipment: "shipment",
      package: "package", order: "order", asset: "asset", progress: "Progress", delivered: "delivered",
      delivering: "delivering, attempt", notifying: "notifying partners", acknowledging: "waiting for acknowledgement",
      complete: "complete",
    },
    "zh-CN": {
      title: "产品追溯", item: "物品（编号、数字链接、EPC URI）", backward: "反向追溯（由什么构成）",
      forward: "正向追踪（去向）", depth: "层数", trace: "追溯", items: "项", kind: "类型", key: "标识",
      status: "状态", level: "层级", recalls: "召回活动", startRecall: "发起召回", recallName: "活动名称",
      reason: "原因", affected: "受影响", notices: "通知", acked: "已确认", pending: "待确认",
      inbox: "收到的召回通知", ack: "确认并在本企业召回", none: "暂无。", frozenBatches: "受影响批次",
      receiver: "接收方", graph: "追溯图", truncated: "（已截断）", material_lot: "原料批次", batch: "生产批次",
      serial: "序列号", pallet: "托盘", shipment: "发货", package: "包装", order: "订单", asset: "资产",
      progress: "进度", delivered: "已送达", delivering: "投递中，第", notifying: "正在通知合作企业",
      acknowledging: "等待确认", complete: "已完成",
    },
  };
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLORS = {
    material_lot: "#8d6e63", batch: "#1e88e5", serial: "#43a047", pallet: "#fb8c00", shipment: "#8e24aa",
    package: "#f4511e", order: "#546e7a", asset: "#00897b",
  };

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  /* A layered graph: one column per depth, nodes stacked, links as lines (at most 60 nodes a column). */
  function graph(data, L) {
    const cols = new Map();
    for (const n of data.nodes) {
      if (!cols.has(n.depth)) cols.set(n.depth, []);
      cols.get(n.depth).push(n);
    }
    const depths = [...cols.keys()].sort((a, b) => a - b);
    const W = 190, H = 26, GAP = 60, shown = new Map();
    let tallest = 0;
    depths.forEach((d, ci) => {
      const col = cols.get(d).slice(0, 60);
      tallest = Math.max(tallest, col.length);
      col.forEach((n, ri) => shown.set(n.id, { x: 10 + ci * (W + GAP), y: 10 + ri * (H + 8), n }));
    });
    const width = 20 + depths.length * (W + GAP), height = 20 + tallest * (H + 8);
    const lines = data.edges
      .filter((e) => shown.has(e.parent) && shown.has(e.child))
      .map((e) => {
        const a = shown.get(e.parent), b = shown.get(e.child);
        return svg("line", { x1: a.x + W, y1: a.y + H / 2, x2: b.x, y2: b.y + H / 2, stroke: "#90a4ae", "stroke-width": 1 });
      });
    const boxes = [...shown.values()].map(({ x, y, n }) =>
      svg("g", { "data-testid": "trace-node", "data-kind": n.kind, "data-status": n.status },
        svg("rect", { x, y, width: W, height: H, rx: 4, fill: COLORS[n.kind] || "#607d8b", opacity: n.status === "frozen" ? 0.55 : 1,
          stroke: n.status === "frozen" ? "#d32f2f" : "none", "stroke-width": 2 }),
        svg("text", { x: x + 6, y: y + 17, fill: "#fff", "font-size": 11 }, (L[n.kind] || n.kind) + " " + n.key.slice(-18)),
        svg("title", null, `${n.key} · ${n.status}`)));
    return svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": L.graph }, lines, boxes);
  }

  window.Gongyun.pages["app:trace/main"] = async () => {
    const G = window.Gongyun;
    const L = TEXT[G.LANG] || TEXT.en;
    const el = (tag, attrs, ...children) => {
      const { style, ...rest } = attrs || {};
      const node = G.el(tag, rest, ...children);
      if (style) node.style.cssText = style;
      return node;
    };
    const root = document.getElementById("gy-app-root");
    const ref = el("input", { type: "text", size: 48, "aria-label": L.item, placeholder: L.item, "data-testid": "trace-ref" });
    const dir = el("select", { "aria-label": L.trace, "data-testid": "trace-direction" },
      el("option", { value: "backward" }, L.backward), el("option", { value: "forward" }, L.forward));
    const depth = el("input", { type: "number", min: 1, max: 100, size: 4, "aria-label": L.depth, placeholder: L.depth });
    const out = el("div", { "data-testid": "trace-result", style: "overflow-x:auto" });
    const message = el("p", { role: "status" });
    const fromHash = new URLSearchParams(location.hash.slice(1));

    async function runTrace() {
      if (!ref.value.trim()) return;
      const q = depth.value ? `?depth=${Number(depth.value)}` : "";
      try {
        const data = await G.api("GET", `${API}/trace/${dir.value}/${encodeURIComponent(ref.value.trim())}${q}`);
        message.textContent = `${data.count} ${L.items} ${data.truncated ? L.truncated : ""}`;
        const rows = data.nodes.slice(0, 500).map((n) =>
          el("tr", null, el("td", null, n.depth), el("td", null, L[n.kind] || n.kind), el("td", null, n.key), el("td", null, n.status)));
        out.replaceChildren(graph(data, L),
          el("table", { class: "gy-table", "data-testid": "trace-table" },
            el("thead", null, el("tr", null, el("th", null, L.level), el("th", null, L.kind), el("th", null, L.key), el("th", null, L.status))),
            el("tbody", null, rows)));
      } catch (err) {
        message.textContent = err.message || String(err);
      }
    }

    const recallsBox = el("div", { "data-testid": "recall-list" });
    const inboxBox = el("div", { "data-testid": "recall-inbox" });
    const recallItem = el("input", { type: "text", size: 40, "aria-label": L.item, placeholder: L.item, "data-testid": "recall-item" });
    const recallName = el("input", { type: "text", size: 24, "aria-label": L.recallName, placeholder: L.recallName, "data-testid": "recall-name" });

    /* A notice's state: acknowledged, delivered to a partner's node, being delivered, or waiting. */
    function noticeState(n) {
      if (n.acked_at) return L.acked;
      if (n.push) return n.delivered_at ? L.delivered : `${L.delivering} ${n.attempts + 1}`;
      return L.pending;
    }

    /* A campaign's progress: a bar with its percent and stage. */
    function progressBar(p) {
      return el("p", { "data-testid": "recall-progress", "data-percent": String(p.percent) },
        `${L.progress}: `, el("progress", { max: "100", value: String(p.percent) }),
        ` ${p.percent} % — ${L[p.stage] || p.stage} (${p.done}/${p.notices})`);
    }

    let refresh = null;
    async function loadRecalls() {
      const list = await G.api("GET", `${API}/recalls`);
      if (!list.length) { recallsBox.replaceChildren(el("p", { class: "muted" }, L.none)); return; }
      const blocks = [];
      for (const r of list) {
        const batches = await G.api("GET", `${API}/items?kind=batch&status=frozen&limit=200`);
        const kinds = Object.entries(r.by_kind).map(([k, n]) => `${L[k] || k}: ${n}`).join(" · ");
        blocks.push(el("section", { class: "gy-card", "data-testid": "recall-campaign" },
          el("h3", null, `#${r.id} ${r.name}`),
          el("p", null, `${L.affected}: ${r.affected} (${kinds})`),
          progressBar(r.progress),
          el("p", null, `${L.notices}: `, ...r.notices.map((n) =>
            el("span", { class: "gy-chip" }, `${L.receiver} ${n.receiver} — ${noticeState(n)} `))),
          el("details", null, el("summary", null, L.frozenBatches),
            el("ul", { "data-testid": "recall-batches" }, batches.map((b) => el("li", null, b.key))))));
        break; /* the newest campaign in detail; the others by the list below */
      }
      blocks.push(el("ul", null, list.slice(1).map((r) =>
        el("li", null, `#${r.id} ${r.name} — ${L.affected} ${r.affected} · ${L.progress} ${r.progress.percent} %`))));
      recallsBox.replaceChildren(...blocks);
      clearTimeout(refresh); /* follow a campaign until its notices are done */
      if (list.some((r) => r.progress.stage !== "complete")) refresh = setTimeout(loadRecalls, 5000);
    }

    async function loadInbox() {
      const list = await G.api("GET", `${API}/inbox`);
      inboxBox.replaceChildren(list.length ? el("ul", null, list.map((n) => el("li", null,
        `${n.sender} #${n.recall}: ${n.keys.length} · ${n.acked_at ? L.acked : L.pending} `,
        n.acked_at ? "" : el("button", { type: "button", class: "gy-button", onclick: async () => {
          await G.api("POST", `${API}/inbox/${n.id}/ack`, { apply: true });
          await loadInbox();
        } }, L.ack)))) : el("p", { class: "muted" }, L.none));
    }

    async function startRecall() {
      if (!recallItem.value.trim() || !recallName.value.trim()) return;
      try {
        await G.api("POST", `${API}/recalls`, { item: recallItem.value.trim(), name: recallName.value.trim() });
        await loadRecalls();
      } catch (err) {
        message.textContent = err.message || String(err);
      }
    }

    root.replaceChildren(
      el("h1", null, L.title),
      el("div", { class: "gy-toolbar", style: "display:flex;gap:.5rem;flex-wrap:wrap;align-items:center" },
        ref, dir, depth, el("button", { type: "button", class: "gy-button", onclick: runTrace, "data-testid": "trace-run" }, L.trace)),
      message, el("h2", null, L.graph), out,
      el("h2", null, L.recalls),
      el("div", { class: "gy-toolbar", style: "display:flex;gap:.5rem;flex-wrap:wrap" }, recallItem, recallName,
        el("button", { type: "button", class: "gy-button", onclick: startRecall, "data-testid": "recall-start" }, L.startRecall)),
      recallsBox, el("h2", null, L.inbox), inboxBox);
    if (fromHash.get("item")) {
      ref.value = fromHash.get("item");
      if (fromHash.get("direction")) dir.value = fromHash.get("direction");
      await runTrace();
    }
    await Promise.all([loadRecalls(), loadInbox()]);
  };
})();
