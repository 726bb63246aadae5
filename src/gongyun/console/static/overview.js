/* Gongyun console: the overview page (KPI tiles, live trends, account, platform status, areas). */
(function () {
  "use strict";

  const { t, $, el, api, items, can, roleName, permName, badge, pages } = window.Gongyun;
  const G = window.Gongyun;
  const LIVE_KEYS = { open: "live.open", retrying: "live.retrying", closed: "live.closed" };
  const TREND_TAGS = 4;
  const TREND_RANGE_S = 900;

  async function probe(path) {
    try {
      const r = await fetch(path, { headers: { Accept: "application/json" } });
      return r.ok;
    } catch (e) {
      return false;
    }
  }

  async function kpi(name, perm, path) {
    const tile = $("#kpi-" + name);
    if (!can(tile._me, perm)) return;
    try {
      const n = items(await api("GET", path)).length;
      tile.querySelector(".kpi-value").textContent = G.formatNumber(n, 0);
      tile.dataset.value = String(n);
      tile.hidden = false;
    } catch (err) {
      tile.hidden = true;
    }
  }

  async function kpis(me) {
    document.querySelectorAll(".kpi").forEach((tile) => (tile._me = me));
    await Promise.all([
      kpi("assets", "assets:read", "/api/v1/assets"),
      kpi("devices", "devices:read", "/api/v1/assets/devices"),
      kpi("tags", "assets:read", "/api/v1/assets/tags"),
      kpi("alarms", "alarms:read", "/api/v1/alarms?active=true"),
    ]);
    const alarms = $("#kpi-alarms");
    alarms.classList.toggle("kpi-alert", Number(alarms.dataset.value || 0) > 0);
  }

  async function trends(me) {
    if (!can(me, "telemetry:read")) return;
    let tags;
    try {
      tags = items(await api("GET", "/api/v1/telemetry/tags")).slice(0, TREND_TAGS);
    } catch (err) {
      return;
    }
    if (!tags.length) return;
    $("#ov-trends").hidden = false;
    // One small chart per tag: their scales differ too much (rpm beside °C) to share an axis.
    const boxes = tags.map((tag) => el("div", { class: "trend trend-mini", "data-tag": tag }));
    $("#ov-trend").replaceChildren(...boxes);
    const charts = tags.map(
      (tag, i) => new G.charts.Trend(boxes[i], [{ label: tag, color: G.charts.COLORS[i] }], { window_s: TREND_RANGE_S, height: 170 }),
    );
    const end = new Date(Date.now() + 5000);
    const start = new Date(end.getTime() - TREND_RANGE_S * 1000);
    const q = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), buckets: "300" });
    tags.forEach((tag) => q.append("tag", tag));
    const res = await api("GET", "/api/v1/telemetry/aligned?" + q.toString());
    const times = (res.times || []).map(G.charts.seconds);
    tags.forEach((tag, i) => {
      const values = (res.values || {})[tag] || [];
      const first = values.findIndex((v) => v !== null && v !== undefined);
      const from = first < 0 ? times.length : first;
      charts[i].setData(times.slice(from), [values.slice(from)]);
    });
    const live = $("#ov-live");
    const stream = new URLSearchParams();
    tags.forEach((tag) => stream.append("tag", tag));
    G.stream("/api/v1/telemetry/stream?" + stream.toString(), (name, data) => {
      if (name !== "points" || !Array.isArray(data)) return;
      for (const p of data) {
        const i = tags.indexOf(p.tag);
        if (i >= 0 && typeof p.value === "number") charts[i].append(0, G.charts.seconds(p.ts), p.value);
      }
    }, (s) => {
      live.textContent = t(LIVE_KEYS[s] || "live.connecting");
      live.className = "badge " + (s === "open" ? "badge-ok" : "badge-warn");
    });
  }

  async function initOverview(me) {
    $("#ov-welcome").textContent = t("overview.welcome", { name: me.display_name || me.username });
    $("#ov-username").textContent = me.username;
    $("#ov-tenant").textContent = me.tenant_name || me.tenant_id;
    $("#ov-role").textContent = roleName(me.role);
    const perms = (me.permissions || []).slice().sort();
    $("#ov-perms").replaceChildren(...perms.map((p) => el("li", { class: "chip", title: p }, permName(p))));
    const health = (async () => {
      for (const [id, path] of [["#ov-health-api", "/healthz"], ["#ov-health-ready", "/readyz"]]) {
        const ok = await probe(path);
        $(id).replaceChildren(badge(ok ? "ok" : "bad", t(ok ? "health.ok" : "health.down")));
      }
    })();
    await Promise.all([kpis(me), trends(me), health]);
  }

  pages.overview = initOverview;
})();
