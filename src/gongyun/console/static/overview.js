/* Gongyun console: the overview page (account, platform status, areas). */
(function () {
  "use strict";

  const { t, $, el, roleName, permName, badge, pages } = window.Gongyun;


  async function probe(path) {
    try {
      const r = await fetch(path, { headers: { Accept: "application/json" } });
      return r.ok;
    } catch (e) {
      return false;
    }
  }

  async function initOverview(me) {
    $("#ov-welcome").textContent = t("overview.welcome", { name: me.display_name || me.username });
    $("#ov-username").textContent = me.username;
    $("#ov-tenant").textContent = me.tenant_name || me.tenant_id;
    $("#ov-role").textContent = roleName(me.role);
    const perms = (me.permissions || []).slice().sort();
    $("#ov-perms").replaceChildren(...perms.map((p) => el("li", { class: "chip", title: p }, permName(p))));
    for (const [id, path] of [["#ov-health-api", "/healthz"], ["#ov-health-ready", "/readyz"]]) {
      const ok = await probe(path);
      $(id).replaceChildren(badge(ok ? "ok" : "bad", t(ok ? "health.ok" : "health.down")));
    }
  }

  pages.overview = initOverview;
})();
