/* Trace app: a product's page (the URL of its identifier record): what it is, how it was made,
 * where it went, its events and recalls. English and 简体中文. */
(function () {
  "use strict";
  const API = "/api/v1/apps/trace";
  const TEXT = {
    en: {
      title: "Product", key: "Identifier", kind: "Kind", status: "Status", label: "Digital Link", made: "How it was made",
      parts: "Components", shipped: "Shipments", receivers: "Receivers", events: "Events", recalls: "Recalls",
      machine: "Machine", operator: "Operator", window: "Time window", none: "None.", missing: "Give ?key= or #item=.",
      trace: "Open the trace graph", process: "Process data of the production windows", tag: "Tag", count: "Points",
      min: "Min", avg: "Average", max: "Max", inspections: "Quality inspections", noData: "No platform data in this process.",
    },
    "zh-CN": {
      title: "产品", key: "标识", kind: "类型", status: "状态", label: "数字链接", made: "生产过程", parts: "组成部件",
      shipped: "发货", receivers: "接收方", events: "事件", recalls: "召回", machine: "设备", operator: "操作员",
      window: "时间窗口", none: "无。", missing: "请提供 ?key= 或 #item=。", trace: "打开追溯图",
      process: "生产时间窗口的过程数据", tag: "位号", count: "点数", min: "最小", avg: "平均", max: "最大",
      inspections: "质量检验", noData: "本进程不运行平台数据。",
    },
  };

  window.Gongyun.pages["app:trace/product"] = async () => {
    const G = window.Gongyun;
    const L = TEXT[G.LANG] || TEXT.en;
    const el = G.el;
    const root = document.getElementById("gy-app-root");
    const ref = new URLSearchParams(location.search).get("key") || new URLSearchParams(location.hash.slice(1)).get("item");
    if (!ref) { root.replaceChildren(el("p", null, L.missing)); return; }
    const data = await G.api("GET", `${API}/lifecycle/${encodeURIComponent(ref)}`);
    const it = data.item;
    const list = (rows, fn) => rows.length ? el("ul", null, rows.map((r) => el("li", null, fn(r)))) : el("p", { class: "muted" }, L.none);
    const num = (v) => (v === null || v === undefined ? "-" : Number(v).toFixed(2));
    const process = data.process === null ? el("p", { class: "muted" }, L.noData)
      : data.process.length === 0 ? el("p", { class: "muted" }, L.none)
      : el("div", { "data-testid": "product-process" }, data.process.map((w) => el("section", null,
        el("h3", null, `${L.machine} ${w.machine} — ${L.window} ${w.start_at} … ${w.end_at}`),
        el("table", null,
          el("thead", null, el("tr", null, [L.tag, L.count, L.min, L.avg, L.max].map((h) => el("th", null, h)))),
          el("tbody", null, w.tags.map((t) => el("tr", null,
            el("td", null, t.tag), el("td", null, String(t.count)), el("td", null, num(t.min)),
            el("td", null, num(t.avg)), el("td", null, num(t.max)))))))));
    root.replaceChildren(
      el("h1", { "data-testid": "product-title" }, `${L.title}: ${it.key}`),
      el("dl", { "data-testid": "product-facts" },
        el("dt", null, L.kind), el("dd", null, it.kind),
        el("dt", null, L.status), el("dd", { "data-testid": "product-status" }, it.status),
        el("dt", null, L.label), el("dd", null, el("code", null, data.label))),
      el("p", null, el("a", { href: `/apps/trace/main#item=${encodeURIComponent(it.id)}&direction=backward` }, L.trace)),
      el("h2", null, L.made),
      list(data.production, (p) => `${p.parent_kind} ${p.parent_key} — ${L.machine} ${p.machine || "-"}, ${L.operator} ${p.operator || "-"}, ${L.window} ${p.start_at || "-"} … ${p.end_at || "-"}`),
      el("h2", null, L.process), process,
      el("h2", null, L.inspections),
      list(data.inspections || [], (q) => `${q.recorded_at} ${q.lot} ${q.characteristic} ${q.value ?? ""}${q.defects != null ? ` ${q.defects}/${q.sample_size}` : ""} (${q.operator})`),
      el("h2", null, L.parts), list(data.components, (c) => `${c.kind} ${c.key} (${c.status})`),
      el("h2", null, L.shipped), list(data.shipments, (s) => `${s.kind} ${s.key} ${s.receiver ? "→ " + s.receiver : ""}`),
      el("h2", null, L.events), list(data.events, (e) => `${e.eventTime} ${e.type} ${e.bizStep || ""} ${e.disposition || ""}`),
      el("h2", null, L.recalls), list(data.recalls, (r) => `#${r.id} ${r.name} (${r.status})`),
    );
  };
})();
