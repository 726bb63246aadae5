/* Gongyun console: the shell (language, header, login, page start). Every visible string comes from t().
 * api.js, loaded next, adds the API client, the session and live streams to window.Gongyun. */
(function () {
  "use strict";

  const I18N = JSON.parse(document.getElementById("gy-i18n").textContent);
  const LANG = document.documentElement.lang || "en";
  const PAGE = document.body.dataset.page;
  /* Filled below and by api.js; page scripts read it when they load (after both). */
  const G = (window.Gongyun = {});

  function t(key, params) {
    let text = I18N[key];
    if (text === undefined) {
      console.error("gongyun: missing translation", key);
      text = key;
    }
    if (params) {
      text = text.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
    }
    return text;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  /* Build an element; children are nodes or strings (always text, never HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /* ---------- language ---------- */

  function cookieLang() {
    const match = document.cookie.match(/(?:^|;\s*)gy_lang=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function here() {
    return location.pathname + location.search;
  }

  /* Cookie wins; localStorage restores the choice when the cookie is gone. Returns true when navigating. */
  function syncLanguage() {
    const links = Array.from(document.querySelectorAll("[data-lang]"));
    const supported = links.map((a) => a.dataset.lang);
    links.forEach((a) => a.addEventListener("click", () => localStorage.setItem("gy_lang", a.dataset.lang)));
    const stored = localStorage.getItem("gy_lang");
    if (!cookieLang() && stored && stored !== LANG && supported.includes(stored)) {
      location.replace("/console/lang/" + encodeURIComponent(stored) + "?next=" + encodeURIComponent(here()));
      return true;
    }
    localStorage.setItem("gy_lang", LANG);
    return false;
  }

  /* ---------- alarm banner (every page) ---------- */

  /* Alarm transitions from the one shared stream, for pages: hub.addEventListener("alarm", e => e.detail). */
  const alarmHub = new EventTarget();

  async function refreshBanner() {
    const banner = $("#gy-alarm-banner");
    let alarms;
    try {
      alarms = G.items(await G.api("GET", "/api/v1/alarms?active=true"));
    } catch (err) {
      banner.hidden = true;
      return;
    }
    const count = alarms.filter((a) => a.state === "unack_active").length;
    banner.dataset.count = String(count);
    $("#gy-alarm-count").textContent = t("banner.alarms", { count });
    banner.classList.toggle("alarm-banner-quiet", count === 0);
    banner.hidden = false;
  }

  function startBanner() {
    let timer = null;
    refreshBanner();
    G.stream("/api/v1/alarms/stream", (name, data) => {
      if (name !== "alarm") return;
      alarmHub.dispatchEvent(new CustomEvent("alarm", { detail: data }));
      clearTimeout(timer);
      timer = setTimeout(refreshBanner, 150);
    }, (s) => {
      alarmHub.state = s;
      alarmHub.dispatchEvent(new CustomEvent("state", { detail: s }));
      if (s === "open") refreshBanner();
    });
  }

  /* ---------- formatting ---------- */

  function formatNumber(value, digits) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return new Intl.NumberFormat(LANG, { maximumFractionDigits: digits === undefined ? 3 : digits }).format(value);
  }

  function formatTime(value) {
    if (!value) return "—";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return new Intl.DateTimeFormat(LANG, { dateStyle: "short", timeStyle: "medium" }).format(date);
  }

  const relative = new Intl.RelativeTimeFormat(LANG, { numeric: "auto" });
  const AGO_STEPS = [
    [60, 1, "second"],
    [3600, 60, "minute"],
    [86400, 3600, "hour"],
    [Infinity, 86400, "day"],
  ];

  /* A past (or future) time relative to now: "5 seconds ago", "5秒钟前". */
  function formatAgo(value) {
    if (!value) return "—";
    const date = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    const s = (date.getTime() - Date.now()) / 1000;
    const [, size, unit] = AGO_STEPS.find(([limit]) => Math.abs(s) < limit);
    return relative.format(Math.round(s / size), unit);
  }

  /* ---------- shared widgets ---------- */

  function flash(kind, message) {
    const box = $("#gy-flash");
    if (!box) return;
    box.replaceChildren(el("div", { class: "alert alert-" + kind }, message));
  }

  function roleName(role) {
    return t("role." + role);
  }

  function permName(perm) {
    const [resource, action] = String(perm).split(":");
    return t("perm.res." + resource) + " · " + t("perm.act." + action);
  }

  function formatDate(value) {
    if (!value) return "—";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value);
    return new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeStyle: "short" }).format(date);
  }

  function badge(kind, text) {
    return el("span", { class: "badge badge-" + kind }, text);
  }

  function table(columns, rows, emptyKey) {
    if (!rows.length) return el("p", { class: "empty-row" }, t(emptyKey));
    const head = el("tr", null, columns.map((c) => el("th", { scope: "col" }, t(c.label))));
    const body = rows.map((row) => el("tr", null, columns.map((c) => el("td", null, c.render(row)))));
    return el("table", { class: "table" }, el("thead", null, head), el("tbody", null, body));
  }

  function formData(form) {
    const data = {};
    new FormData(form).forEach((value, key) => {
      if (String(value).trim() !== "") data[key] = String(value).trim();
    });
    return data;
  }

  async function submitting(form, work) {
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      flash("error", G.errorMessage(err));
    } finally {
      button.disabled = false;
    }
  }

  /* ---------- login page ---------- */

  function safeNext() {
    const next = new URLSearchParams(location.search).get("next") || "/overview";
    if (!next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\") || next.startsWith("/login")) {
      return "/overview";
    }
    return next;
  }

  function initLogin() {
    const reason = new URLSearchParams(location.search).get("reason");
    if (G.session.access() && !reason) {
      location.replace(safeNext());
      return;
    }
    if (reason === "expired") flash("info", t("login.session_expired"));
    if (reason === "signed_out") flash("info", t("login.signed_out"));
    if (reason === "password_changed") flash("info", t("login.password_changed"));
    const form = $("#login-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const body = new URLSearchParams(new FormData(form));
        let r;
        try {
          r = await fetch("/api/v1/auth/token", { method: "POST", body });
        } catch (e) {
          flash("error", t("error.network"));
          return;
        }
        if (r.ok) {
          G.session.save(await r.json());
          location.assign(safeNext());
          return;
        }
        let problem = null;
        try {
          problem = await r.json();
        } catch (e) {
          problem = null;
        }
        const err = new G.ApiError(r.status, problem);
        if (r.status === 401) err.code = "invalid_credentials";
        flash("error", G.errorMessage(err));
        $("#password", form).select();
      });
    });
    $("#username", form).focus();
  }

  /* ---------- authenticated shell ---------- */

  async function initShell() {
    if (!G.session.access()) {
      G.toLogin();
      return null;
    }
    let me;
    try {
      me = await G.api("GET", "/api/v1/me");
    } catch (err) {
      document.body.classList.remove("gy-pending");
      flash("error", G.errorMessage(err));
      return null;
    }
    $("#gy-user-name").textContent = me.username;
    $("#gy-user .user-avatar").textContent = Array.from(me.username)[0] || "";
    $("#gy-user-meta").textContent = (me.tenant_name || me.tenant_id) + " · " + roleName(me.role);
    $("#gy-user").hidden = false;
    $("#gy-logout").addEventListener("click", logout);
    document.body.classList.remove("gy-pending");
    return me;
  }

  async function logout() {
    const token = G.session.refreshToken();
    try {
      await fetch("/api/v1/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + G.session.access() },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch (e) {
      /* the local session is cleared either way */
    }
    G.session.clear();
    location.assign("/login?reason=signed_out");
  }

  function can(me, perm) {
    return (me.permissions || []).includes(perm);
  }

  /* ---------- start ---------- */

  /* Page scripts (overview.js, admin.js ...) register an initialiser here: pages[slug] = async (me) => {}. */
  const pages = {};

  async function start() {
    if (syncLanguage()) return;
    if (PAGE === "login") {
      initLogin();
      return;
    }
    if (document.body.dataset.auth !== "required") return;
    const me = await initShell();
    if (me && can(me, "alarms:read")) startBanner();
    if (me && pages[PAGE]) {
      try {
        await pages[PAGE](me);
      } catch (err) {
        flash("error", G.errorMessage(err));
      }
    }
    document.body.dataset.ready = "true";
  }

  Object.assign(G, {
    t, $, el, here, flash, roleName, permName, formatDate, badge, table, formData, submitting, can, pages,
    alarmHub, formatNumber, formatTime, formatAgo, LANG,
  });
  /* Deferred page scripts run before DOMContentLoaded, so every page has registered by then. */
  document.addEventListener("DOMContentLoaded", start);
})();
