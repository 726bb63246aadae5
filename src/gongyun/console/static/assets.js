/* Gongyun console: the assets page (ISA-95 tree, devices and tags of equipment, a live tag trend). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, items, errorMessage, flash, badge, table, can, pages } = G;

  const LEVEL_KEYS = {
    enterprise: "level.enterprise",
    site: "level.site",
    area: "level.area",
    line: "level.line",
    cell: "level.cell",
    equipment: "level.equipment",
  };
  const CLASS_KEYS = { general: "class.general", important: "class.important", core: "class.core" };
  const REASON_KEYS = {
    duplicate: "clean.reason.duplicate",
    out_of_order: "clean.reason.out_of_order",
    bad_quality: "clean.reason.bad_quality",
    out_of_range: "clean.reason.out_of_range",
    spike: "clean.reason.spike",
    stuck: "clean.reason.stuck",
    gap: "clean.reason.gap",
    unit_converted: "clean.reason.unit_converted",
  };
  const ACTION_KEYS = {
    dropped: "clean.action.dropped",
    replaced: "clean.action.replaced",
    flagged: "clean.action.flagged",
    interpolated: "clean.action.interpolated",
  };
  const PROTOCOL_KEYS = {
    modbus: "protocol.modbus",
    opcua: "protocol.opcua",
    mqtt: "protocol.mqtt",
    sparkplug: "protocol.sparkplug",
    other: "protocol.other",
  };
  const LIVE_KEYS = { open: "live.open", retrying: "live.retrying", closed: "live.closed" };
  const RUN_TICK = new Intl.DateTimeFormat(G.LANG, { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });

  function levelName(level) {
    return LEVEL_KEYS[level] ? t(LEVEL_KEYS[level]) : level;
  }

  function reasonName(reason) {
    return REASON_KEYS[reason] ? t(REASON_KEYS[reason]) : reason;
  }

  /* ---------- tree ---------- */

  let selected = null;
  let trend = null;
  let history = null;
  let me = null;

  function renderTree(nodes) {
    if (!nodes.length) return el("p", { class: "empty-row" }, t("assets.empty"));
    return el("ul", { role: "tree" }, nodes.map(renderNode));
  }

  function renderNode(node) {
    const button = el(
      "button",
      { type: "button", class: "tree-node", "data-node": node.id, "data-level": node.level, onclick: () => select(node) },
      el("span", { class: "tree-level" }, levelName(node.level)),
      el("span", { class: "tree-name" }, node.name),
      el("span", { class: "tree-health", "data-health-of": node.id }),
    );
    const kids = (node.children || []).map(renderNode);
    const devices = (node.devices || []).map((d) =>
      el("li", { class: "tree-device", role: "treeitem" }, el("span", { class: "tree-level" }, t("assets.device")), d.name),
    );
    const sub = kids.length || devices.length ? el("ul", { role: "group" }, kids, devices) : null;
    return el("li", { role: "treeitem" }, button, sub);
  }

  async function select(node) {
    selected = node;
    document.querySelectorAll(".tree-node").forEach((b) => b.classList.toggle("active", b.dataset.node === node.id));
    $("#asset-detail-title").textContent = node.name;
    $("#asset-level").textContent = levelName(node.level);
    $("#asset-identifier").textContent = node.identifier || "—";
    $("#asset-facts").hidden = false;
    const box = $("#asset-devices");
    if (node.level !== "equipment") {
      box.replaceChildren(el("p", { class: "muted" }, t("assets.not_equipment")));
      return;
    }
    if (!(node.devices || []).length) {
      box.replaceChildren(el("p", { class: "empty-row" }, t("assets.no_devices")));
      return;
    }
    box.replaceChildren(el("p", { class: "muted" }, t("common.loading")));
    try {
      const sections = await Promise.all(node.devices.map(deviceSection));
      if (selected === node) box.replaceChildren(...sections);
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  async function deviceSection(device) {
    const tags = items(await api("GET", "/api/v1/assets/tags?device_id=" + encodeURIComponent(device.id)));
    let latest = {};
    if (tags.length && can(me, "telemetry:read")) {
      const q = new URLSearchParams();
      tags.forEach((tag) => q.append("tag", tag.ref));
      latest = (await api("GET", "/api/v1/telemetry/latest?" + q.toString())) || {};
    }
    const columns = [
      { label: "field.tag", render: (tag) => el("strong", null, tag.name) },
      { label: "field.unit", render: (tag) => tag.unit || "—" },
      {
        label: "field.range",
        render: (tag) => (tag.low === null && tag.high === null ? "—" : G.formatNumber(tag.low) + " … " + G.formatNumber(tag.high)),
      },
      { label: "field.classification", render: (tag) => t(CLASS_KEYS[tag.classification] || "class.general") },
      {
        label: "field.last_value",
        render: (tag) => {
          const p = latest[tag.ref];
          return el("span", { "data-last": tag.ref, title: p ? G.formatTime(p.ts) : null }, p ? G.formatNumber(p.value) : "—");
        },
      },
      {
        label: "field.actions",
        render: (tag) =>
          can(me, "telemetry:read")
            ? el("button", { type: "button", class: "btn btn-small", "data-tag": tag.ref, onclick: () => showTrend(tag) }, t("action.trend"))
            : "",
      },
    ];
    return el(
      "div",
      { class: "device-block", "data-device": device.name },
      el("h3", null, device.name, " ", badge("muted", t(PROTOCOL_KEYS[device.protocol] || "protocol.other"))),
      el("div", { class: "table-wrap" }, table(columns, tags, "assets.no_tags")),
    );
  }

  /* ---------- health index (the maintenance app, when enabled), rolled up the tree ---------- */

  /* Each node's "site/area/line" path below the enterprise, as the maintenance app places equipment. */
  function nodePaths(nodes, prefix, out) {
    for (const node of nodes) {
      const path = node.level === "enterprise" ? "" : prefix ? prefix + "/" + node.name : node.name;
      out.push({ node, path });
      nodePaths(node.children || [], path, out);
    }
    return out;
  }

  function healthKind(h) {
    return h >= 70 ? "ok" : h >= 40 ? "warn" : "bad";
  }

  /* Worst child on the badge, the weighted mean and the count in its title; an equipment node takes
     the watched equipment named like it or like one of its devices. */
  async function showHealth(tree) {
    let fleet;
    try {
      fleet = await api("GET", "/api/v1/apps/maintenance/equipment");
    } catch (err) {
      return false; // disabled meanwhile: the tree keeps its last figures
    }
    const groups = new Map((fleet.groups || []).map((g) => [g.path, g]));
    const byName = new Map((fleet.equipment || []).map((e) => [e.name, e]));
    for (const { node, path } of nodePaths(tree, "", [])) {
      const cell = document.querySelector("[data-health-of='" + CSS.escape(node.id) + "']");
      if (!cell) continue;
      let fig = null;
      if (node.level === "equipment") {
        const hits = [node.name, ...(node.devices || []).map((d) => d.name)].map((n) => byName.get(n)).filter((e) => e && e.health !== null);
        if (hits.length) {
          const worst = Math.min(...hits.map((e) => e.health));
          fig = { worst, title: t("assets.health.equipment", { value: G.formatNumber(worst, 0) }) };
        }
      } else {
        const g = groups.get(path);
        if (g && g.worst !== null) {
          fig = {
            worst: g.worst,
            title: t("assets.health.group", {
              worst: G.formatNumber(g.worst, 0),
              weighted: G.formatNumber(g.weighted, 0),
              count: g.equipment,
              equipment: g.worst_equipment || "—",
            }),
          };
        }
      }
      if (!fig) {
        cell.replaceChildren();
        delete cell.dataset.health;
        continue;
      }
      cell.dataset.health = String(fig.worst);
      cell.replaceChildren(
        el("span", { class: "badge badge-" + healthKind(fig.worst), title: fig.title }, t("assets.health.badge", { value: G.formatNumber(fig.worst, 0) })),
      );
    }
    return true;
  }

  async function maintenanceEnabled() {
    if (!can(me, "apps:read")) return false;
    try {
      const found = items(await api("GET", "/api/v1/apps")).find((a) => a.name === "maintenance");
      return Boolean(found && found.state === "enabled");
    } catch (err) {
      return false;
    }
  }

  /* Refreshed every 5 s while the page is open (only where the app is enabled). */
  async function followHealth(tree) {
    if (!(await maintenanceEnabled())) return;
    const tick = async () => {
      if (await showHealth(tree)) setTimeout(tick, 5000);
    };
    await tick();
  }

  /* ---------- trend and cleaning ---------- */

  async function showTrend(tag) {
    if (trend) trend.close();
    const card = $("#trend-card");
    card.hidden = false;
    card.dataset.tag = tag.ref;
    $("#trend-title").textContent = tag.ref;
    $("#trend-last").textContent = "—";
    const live = $("#trend-live");
    trend = new G.charts.TagTrend($("#trend"), tag.ref, {
      unit: tag.unit,
      clean: true,
      range_s: Number($("#trend-range").value),
      onPoint: (p) => {
        $("#trend-last").textContent = G.formatNumber(p.value) + (tag.unit ? " " + tag.unit : "");
        document.querySelectorAll("[data-last='" + CSS.escape(tag.ref) + "']").forEach((cell) => {
          cell.textContent = G.formatNumber(p.value);
          cell.title = G.formatTime(p.ts);
        });
      },
      onStream: (s) => {
        live.textContent = t(LIVE_KEYS[s] || "live.connecting");
        live.className = "badge " + (s === "open" ? "badge-ok" : "badge-warn");
        live.dataset.state = s;
      },
    });
    $("#trend-clean").hidden = !can(me, "telemetry:write");
    $("#trend-clean").onclick = () => runClean(tag);
    const current = trend;
    try {
      await trend.load();
      const last = trend.chart.last(0);
      if (last !== null) $("#trend-last").textContent = G.formatNumber(last) + (tag.unit ? " " + tag.unit : "");
      if (current === trend) trend.follow();
    } catch (err) {
      flash("error", errorMessage(err));
    }
    await showReport(tag.ref);
    card.scrollIntoView({ block: "nearest" });
  }

  /* The tag's recent cleaning runs (newest first): a bar per run, and the newest one in detail. */
  async function showReport(ref) {
    const box = $("#clean-report");
    let reports = [];
    try {
      reports = items(await api("GET", "/api/v1/telemetry/clean/reports?" + new URLSearchParams({ tag: ref })));
    } catch (err) {
      renderHistory([]);
      box.replaceChildren(el("p", { class: "muted" }, errorMessage(err)));
      return;
    }
    renderHistory(reports);
    if (reports.length) renderReport(reports[0]);
    else box.replaceChildren(el("p", { class: "muted" }, t("clean.none")));
  }

  /* What a run changed: every counted reason except unit conversion (which touches every point). */
  function changeCount(rep) {
    return Object.entries(rep.counts || {}).reduce((n, [reason, c]) => (reason === "unit_converted" ? n : n + c), 0);
  }

  function renderHistory(reports) {
    if (history) history.destroy();
    history = null;
    const box = $("#clean-history");
    const chart = $("#clean-history-chart");
    box.hidden = !reports.length;
    chart.dataset.runs = String(reports.length);
    if (!reports.length) {
      chart.replaceChildren();
      return;
    }
    const runs = reports.slice().reverse();
    $("#clean-history-title").textContent = t("clean.history", { count: runs.length });
    history = new G.charts.Bars(
      chart,
      runs.map((r) => G.formatTime(r.created_at)),
      runs.map(changeCount),
      {
        label: t("clean.history.changes"),
        xLabel: t("clean.history.run"),
        ticks: runs.map((r) => RUN_TICK.format(new Date(r.created_at))),
      },
    );
  }

  function renderReport(rep) {
    const counts = Object.entries(rep.counts || {}).map(([reason, n]) => ({ reason, n }));
    const changes = (rep.changes || []).slice(0, 50);
    const parts = [
      el(
        "dl",
        { class: "facts", id: "clean-facts" },
        el("dt", null, t("clean.input")), el("dd", null, G.formatNumber(rep.input_count, 0)),
        el("dt", null, t("clean.output")), el("dd", null, G.formatNumber(rep.output_count, 0)),
        el("dt", null, t("clean.gaps")), el("dd", null, G.formatNumber((rep.gaps || []).length, 0)),
        el("dt", null, t("clean.stuck")), el("dd", null, G.formatNumber((rep.stuck || []).length, 0)),
      ),
      table(
        [
          { label: "field.reason", render: (r) => reasonName(r.reason) },
          { label: "field.count", render: (r) => G.formatNumber(r.n, 0) },
        ],
        counts,
        "clean.nothing",
      ),
      changes.length
        ? table(
            [
              { label: "field.time", render: (c) => G.formatTime(c.ts) },
              { label: "field.change", render: (c) => t(ACTION_KEYS[c.action] || "clean.action.dropped") },
              { label: "field.reason", render: (c) => reasonName(c.reason) },
              { label: "field.old", render: (c) => G.formatNumber(c.old) },
              { label: "field.new", render: (c) => G.formatNumber(c.new) },
            ],
            changes,
            "clean.nothing",
          )
        : null,
    ];
    $("#clean-report").replaceChildren(...parts.filter(Boolean));
  }

  async function runClean(tag) {
    const button = $("#trend-clean");
    button.disabled = true;
    try {
      const range = Number($("#trend-range").value);
      const end = new Date(Date.now() + 5000);
      const start = new Date(end.getTime() - range * 1000);
      const rep = await api("POST", "/api/v1/telemetry/clean", { tag: tag.ref, start: start.toISOString(), end: end.toISOString() });
      flash("success", t("clean.done", { tag: tag.ref }));
      await showTrend(tag);
      renderReport(rep);
    } catch (err) {
      flash("error", errorMessage(err));
    } finally {
      button.disabled = false;
    }
  }

  async function initAssets(user) {
    me = user;
    $("#trend-range").addEventListener("change", () => {
      const ref = $("#trend-card").dataset.tag;
      const button = ref && document.querySelector("button[data-tag='" + CSS.escape(ref) + "']");
      if (button) button.click();
    });
    if (!can(me, "assets:read")) {
      $("#asset-tree").replaceChildren(el("p", { class: "alert alert-info" }, t("error.forbidden")));
      return;
    }
    const tree = items(await api("GET", "/api/v1/assets/tree"));
    $("#asset-tree").replaceChildren(renderTree(tree));
    followHealth(tree);
    // identifier records link here: /assets?node=<id> or /assets?tag=<id> (its equipment)
    const wanted = findNode(tree, await linkedNode(new URLSearchParams(location.search)));
    if (wanted) await select(wanted);
  }

  function findNode(nodes, id) {
    for (const node of id ? nodes : []) {
      const hit = node.id === id ? node : findNode(node.children || [], id);
      if (hit) return hit;
    }
    return null;
  }

  async function linkedNode(query) {
    if (query.get("node")) return query.get("node");
    if (!query.get("tag")) return null;
    try {
      const tag = await api("GET", "/api/v1/assets/tags/" + encodeURIComponent(query.get("tag")));
      const device = await api("GET", "/api/v1/assets/devices/" + encodeURIComponent(tag.device_id));
      return device.equipment_id;
    } catch (err) {
      flash("error", errorMessage(err));
      return null;
    }
  }

  pages.assets = initAssets;
})();
