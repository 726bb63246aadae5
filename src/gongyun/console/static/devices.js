/* Gongyun console: the devices page (devices, last value per tag, live trend, gateway connectivity
 * with each device's state, grouped by local and remote gateway, refreshed periodically). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, items, errorMessage, flash, badge, table, can, pages } = G;

  const PROTOCOL_KEYS = {
    modbus: "protocol.modbus",
    opcua: "protocol.opcua",
    mqtt: "protocol.mqtt",
    sparkplug: "protocol.sparkplug",
    other: "protocol.other",
  };
  const UPLINK_KIND = { connected: "ok", online: "ok", up: "ok", buffering: "warn", degraded: "warn" };
  const UPLINK_NAME_KEYS = { sparkplug: "uplink.sparkplug", bus: "uplink.bus", mqtt: "uplink.mqtt" };
  const LIVE_KEYS = { open: "live.open", retrying: "live.retrying", closed: "live.closed" };
  const STATE_KEYS = { online: "devices.state.online", offline: "devices.state.offline", error: "devices.state.error" };
  const STATE_KIND = { online: "ok", error: "warn", offline: "bad" };
  const REFRESH_MS = 5000;

  let me = null;
  let tagsByRef = {};
  let trend = null;
  let status = {};
  let reported = false;

  function valueCell(ref) {
    return el("span", { class: "last-value", "data-last": ref }, "—");
  }

  function timeCell(ref) {
    return el("span", { class: "muted small", "data-last-ts": ref }, "—");
  }

  function showLatest(ref, point) {
    const tag = tagsByRef[ref];
    const unit = tag && tag.unit ? " " + tag.unit : "";
    document.querySelectorAll("[data-last='" + CSS.escape(ref) + "']").forEach((n) => {
      n.textContent = G.formatNumber(point.value) + unit;
    });
    document.querySelectorAll("[data-last-ts='" + CSS.escape(ref) + "']").forEach((n) => {
      n.textContent = G.formatTime(point.ts);
    });
  }

  /* The device's state as the gateway reports it: online, offline or error (connected, reads failing). */
  function stateBadge(s) {
    const state = s && STATE_KEYS[s.state] ? s.state : "unknown";
    const b = state === "unknown" ? badge("muted", t("devices.state.unknown")) : badge(STATE_KIND[state], t(STATE_KEYS[state]));
    b.dataset.deviceState = state;
    return b;
  }

  function connectionBadge(name) {
    return reported ? stateBadge(status[name]) : null;
  }

  function deviceBlock(device, tags, equipment) {
    const columns = [
      { label: "field.tag", render: (tag) => el("strong", null, tag.name) },
      { label: "field.unit", render: (tag) => tag.unit || "—" },
      { label: "field.last_value", render: (tag) => valueCell(tag.ref) },
      { label: "field.time", render: (tag) => timeCell(tag.ref) },
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
      { class: "device-block", "data-device": device.name, "data-device-id": device.id },
      el(
        "div",
        { class: "device-head" },
        el("h3", null, device.name),
        badge("muted", t(PROTOCOL_KEYS[device.protocol] || "protocol.other")),
        el("span", { class: "device-conn", "data-conn": device.name }, connectionBadge(device.name) || ""),
      ),
      el(
        "dl",
        { class: "facts facts-inline" },
        el("dt", null, t("field.address")), el("dd", null, device.address || "—"),
        el("dt", null, t("field.equipment")), el("dd", null, equipment || t("devices.unbound")),
        el("dt", null, t("field.identifier")), el("dd", null, el("code", null, device.identifier || "—")),
      ),
      el("div", { class: "table-wrap" }, table(columns, tags, "assets.no_tags")),
    );
  }

  async function loadDevices() {
    const [devices, tags, nodes] = await Promise.all([
      api("GET", "/api/v1/assets/devices").then(items),
      can(me, "assets:read") ? api("GET", "/api/v1/assets/tags").then(items) : Promise.resolve([]),
      can(me, "assets:read") ? api("GET", "/api/v1/assets").then(items) : Promise.resolve([]),
    ]);
    const names = Object.fromEntries(nodes.map((n) => [n.id, n.name]));
    tagsByRef = Object.fromEntries(tags.map((tag) => [tag.ref, tag]));
    const box = $("#devices-body");
    if (!devices.length) {
      box.replaceChildren(el("p", { class: "empty-row" }, t("devices.empty")));
      return [];
    }
    box.replaceChildren(
      ...devices.map((d) => deviceBlock(d, tags.filter((tag) => tag.device_id === d.id), names[d.equipment_id])),
    );
    return tags;
  }

  async function loadLatest(tags) {
    if (!tags.length || !can(me, "telemetry:read")) return;
    const q = new URLSearchParams();
    tags.slice(0, 1000).forEach((tag) => q.append("tag", tag.ref));
    const latest = (await api("GET", "/api/v1/telemetry/latest?" + q.toString())) || {};
    for (const [ref, point] of Object.entries(latest)) showLatest(ref, point);
  }

  function follow(tags) {
    if (!can(me, "telemetry:read")) return;
    const live = $("#devices-live");
    let dropped = false;
    G.stream("/api/v1/telemetry/stream", (name, data) => {
      if (name !== "points" || !Array.isArray(data)) return;
      const newest = {};
      for (const p of data) {
        if (!(p.tag in tagsByRef) || typeof p.value !== "number") continue;
        if (!newest[p.tag] || newest[p.tag].ts < p.ts) newest[p.tag] = p;
        if (trend && trend.tag === p.tag) trend.chart.append(0, G.charts.seconds(p.ts), p.value);
      }
      for (const [ref, p] of Object.entries(newest)) showLatest(ref, p);
    }, (s) => {
      if (s === "open" && dropped) {
        // What was stored while the stream was down is not replayed: read it again.
        loadLatest(tags).catch(() => {});
        if (trend) trend.load().catch(() => {});
      }
      if (s === "retrying") dropped = true;
      live.textContent = t(LIVE_KEYS[s] || "live.connecting");
      live.className = "badge " + (s === "open" ? "badge-ok" : "badge-warn");
      live.dataset.state = s;
    });
  }

  async function showTrend(tag) {
    if (trend) trend.close();
    const card = $("#device-trend-card");
    card.hidden = false;
    card.dataset.tag = tag.ref;
    $("#device-trend-title").textContent = tag.ref;
    trend = new G.charts.TagTrend($("#device-trend"), tag.ref, {
      unit: tag.unit,
      range_s: Number($("#device-trend-range").value),
    });
    try {
      await trend.load();
    } catch (err) {
      flash("error", errorMessage(err));
    }
    card.scrollIntoView({ block: "nearest" });
  }

  /* ---------- connectivity (served by the edge gateway integration) ---------- */

  async function optional(path) {
    try {
      return { found: true, rows: items(await api("GET", path)) };
    } catch (err) {
      if (err.status === 404 || err.status === 501 || err.status === 503) return { found: false, rows: [] };
      throw err;
    }
  }

  /* Uplink state: the gateway reports {kind, online, ...} (or a plain state string). */
  function uplinkBadge(uplink, state) {
    if (typeof state === "string" && state) return badge(UPLINK_KIND[state.toLowerCase()] || "muted", state);
    const u = uplink || {};
    if (!u.kind || u.kind === "none") return badge("muted", t("uplink.none"));
    const kind = UPLINK_NAME_KEYS[u.kind] ? t(UPLINK_NAME_KEYS[u.kind]) : String(u.kind);
    return u.online
      ? badge("ok", kind + " · " + t("uplink.online"))
      : badge("bad", kind + " · " + t("uplink.offline"));
  }

  function errorCount(s) {
    if (typeof s.error_count === "number") return s.error_count;
    return typeof s.errors === "number" ? s.errors : 0;
  }

  function dropped(g) {
    const b = g.buffer || {};
    return (b.dropped_age || 0) + (b.dropped_size || 0);
  }

  function lastGoodRead(s) {
    if (!s.last_good_read) return "—";
    return el("span", { title: G.formatTime(s.last_good_read), "data-ago": s.last_good_read }, G.formatAgo(s.last_good_read));
  }

  function remote(g) {
    return Boolean(g && g.uplink && g.uplink.remote);
  }

  function placeBadge(g) {
    const b = remote(g) ? badge("info", t("devices.gateway.remote")) : badge("muted", t("devices.gateway.local"));
    b.dataset.place = remote(g) ? "remote" : "local";
    return b;
  }

  /* Seconds since a remote gateway was last heard, as a relative time. */
  function heard(g) {
    const age = g.uplink && typeof g.uplink.last_seen_s === "number" ? g.uplink.last_seen_s : null;
    if (!remote(g) || age === null) return null;
    return el("span", { class: "muted small" }, t("devices.gateway.heard", { time: G.formatAgo(new Date(Date.now() - age * 1000)) }));
  }

  const STATUS_COLUMNS = [
    { label: "field.device", render: (s) => el("strong", null, s.device) },
    { label: "field.state", render: (s) => stateBadge(s) },
    { label: "field.last_good_read", render: lastGoodRead },
    { label: "field.errors", render: (s) => G.formatNumber(errorCount(s), 0) },
    { label: "field.reconnects", render: (s) => G.formatNumber(s.reconnects || 0, 0) },
    { label: "field.last_error", render: (s) => (s.last_error ? el("code", null, s.last_error) : "—") },
  ];

  /* One block per gateway (local ones first), each with its devices' states. */
  function gatewayGroups(devices, gws) {
    const known = new Map(gws.map((g) => [g.name, g]));
    const names = Array.from(new Set([...gws.map((g) => g.name), ...devices.map((s) => s.gateway || "—")]));
    names.sort((a, b) => Number(remote(known.get(a))) - Number(remote(known.get(b))) || a.localeCompare(b));
    return names.map((name) => {
      const g = known.get(name);
      const rows = devices.filter((s) => (s.gateway || "—") === name);
      const head = el(
        "div",
        { class: "gateway-head" },
        el("h4", null, name),
        g ? placeBadge(g) : badge("muted", t("devices.gateway.unlisted")),
        g ? uplinkBadge(g.uplink, g.uplink_state) : null,
        g ? heard(g) : null,
      );
      const attrs = { class: "gateway-group", "data-gateway": name, "data-place": g && remote(g) ? "remote" : "local" };
      if (g) attrs["data-online"] = String(Boolean(g.uplink && g.uplink.online));
      return el("div", attrs, head, el("div", { class: "table-wrap" }, table(STATUS_COLUMNS, rows, "devices.status.empty")));
    });
  }

  /* Read the gateways' report and show it; resolves to whether any gateway integration answered. */
  async function loadConnectivity() {
    const [devs, gws] = await Promise.all([optional("/api/v1/devices/status"), optional("/api/v1/gateways")]);
    const absent = !devs.rows.length && !gws.rows.length;
    $("#gateway-absent").hidden = !absent;
    $("#gateway-detail").hidden = absent;
    $("#devices-connectivity").dataset.gateway = absent ? "absent" : "present";
    reported = devs.rows.length > 0;
    status = Object.fromEntries(devs.rows.map((s) => [s.device, s]));
    document.querySelectorAll("[data-conn]").forEach((n) => n.replaceChildren(connectionBadge(n.dataset.conn) || ""));
    const refreshed = $("#devices-refreshed");
    refreshed.textContent = t("devices.refreshed", { time: G.formatTime(new Date()) });
    refreshed.hidden = false;
    if (absent) return devs.found || gws.found;
    const groups = gatewayGroups(devs.rows, gws.rows);
    $("#device-status").replaceChildren(...(groups.length ? groups : [el("p", { class: "empty-row" }, t("devices.status.empty"))]));
    $("#gateways").replaceChildren(
      table(
        [
          { label: "field.name", render: (g) => el("strong", null, g.name) },
          { label: "field.type", render: placeBadge },
          { label: "field.uplink", render: (g) => uplinkBadge(g.uplink, g.uplink_state) },
          { label: "field.buffer_depth", render: (g) => G.formatNumber(g.buffer_depth, 0) },
          { label: "field.dropped", render: (g) => G.formatNumber(dropped(g), 0) },
          { label: "kpi.devices", render: (g) => G.formatNumber(g.devices, 0) },
          { label: "field.started", render: (g) => G.formatTime(g.started) },
        ],
        gws.rows,
        "devices.gateways.empty",
      ),
    );
    return true;
  }

  /* Re-read the connection state every few seconds while a gateway integration answers. */
  function refreshPeriodically() {
    const box = $("#devices-connectivity");
    const tick = async () => {
      let more = true;
      if (!document.hidden) {
        try {
          more = await loadConnectivity();
          box.dataset.refreshes = String(Number(box.dataset.refreshes || 0) + 1);
        } catch (err) {
          more = !(err instanceof G.ApiError && err.status === 403);
        }
      }
      if (more) setTimeout(tick, REFRESH_MS);
    };
    setTimeout(tick, REFRESH_MS);
  }

  /* identifier records link here as /devices?device=<id>: show that device first */
  function markLinked(id) {
    const block = id && document.querySelector(".device-block[data-device-id='" + CSS.escape(id) + "']");
    if (!block) return;
    block.classList.add("linked");
    block.setAttribute("aria-current", "true");
    block.scrollIntoView({ block: "start" });
  }

  async function initDevices(user) {
    me = user;
    if (!can(me, "devices:read")) {
      $("#devices-body").replaceChildren(el("p", { class: "alert alert-info" }, t("error.forbidden")));
      $("#devices-connectivity").hidden = true;
      return;
    }
    $("#device-trend-range").addEventListener("change", () => {
      const ref = $("#device-trend-card").dataset.tag;
      if (ref && tagsByRef[ref]) showTrend(tagsByRef[ref]);
    });
    const tags = await loadDevices();
    markLinked(new URLSearchParams(location.search).get("device"));
    const [, found] = await Promise.all([loadLatest(tags), loadConnectivity()]);
    follow(tags);
    if (found) refreshPeriodically();
  }

  pages.devices = initDevices;
})();
