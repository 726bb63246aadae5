/* Gongyun console: a small client for the JSON API. Every visible string comes from t(). */
(function () {
  "use strict";

  const I18N = JSON.parse(document.getElementById("gy-i18n").textContent);
  const LANG = document.documentElement.lang || "en";
  const PAGE = document.body.dataset.page;
  const store = window.sessionStorage;

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

  /* ---------- session and API ---------- */

  const session = {
    access() {
      return store.getItem("gy_access");
    },
    save(tokens) {
      store.setItem("gy_access", tokens.access_token);
      if (tokens.refresh_token) store.setItem("gy_refresh", tokens.refresh_token);
      store.setItem("gy_expires", String(Date.now() + (tokens.expires_in || 0) * 1000));
    },
    clear() {
      ["gy_access", "gy_refresh", "gy_expires"].forEach((k) => store.removeItem(k));
    },
  };

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || "HTTP " + status);
      this.status = status;
      this.code = (problem && problem.code) || null;
      this.problem = problem;
    }
  }

  function toLogin(reason) {
    const params = new URLSearchParams({ next: here() });
    if (reason) params.set("reason", reason);
    location.replace("/login?" + params.toString());
  }

  let refreshing = null;

  function refreshOnce() {
    if (!refreshing) {
      refreshing = (async () => {
        const token = store.getItem("gy_refresh");
        if (!token) return false;
        try {
          const r = await fetch("/api/v1/auth/refresh", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ refresh_token: token }),
          });
          if (!r.ok) return false;
          session.save(await r.json());
          return true;
        } catch (e) {
          return false;
        }
      })().finally(() => {
        setTimeout(() => (refreshing = null), 0);
      });
    }
    return refreshing;
  }

  async function api(method, path, body) {
    const expires = Number(store.getItem("gy_expires") || 0);
    if (expires && expires - Date.now() < 30000) await refreshOnce();
    const send = () => {
      const headers = { Authorization: "Bearer " + session.access(), Accept: "application/json" };
      const init = { method, headers };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetch(path, init);
    };
    let r = await send();
    if (r.status === 401 && (await refreshOnce())) r = await send();
    if (r.status === 401) {
      session.clear();
      toLogin("expired");
      throw new ApiError(401, null);
    }
    if (!r.ok) {
      let problem = null;
      try {
        problem = await r.json();
      } catch (e) {
        problem = null;
      }
      throw new ApiError(r.status, problem);
    }
    if (r.status === 204) return null;
    const text = await r.text();
    return text ? JSON.parse(text) : null;
  }

  function items(result) {
    if (Array.isArray(result)) return result;
    return (result && (result.items || result.data)) || [];
  }

  const ERROR_KEYS = {
    invalid_credentials: "error.invalid_credentials",
    account_locked: "error.account_locked",
    login_throttled: "error.login_throttled",
    validation_failed: "error.validation",
    invalid_input: "error.validation",
    payload_too_large: "error.too_large",
    forbidden: "error.forbidden",
    not_found: "error.not_found",
    conflict: "error.conflict",
    rate_limited: "error.rate_limited",
    malformed_identifier: "error.identifier_invalid",
    identifier_value_invalid: "error.identifier_invalid",
    identifier_record_too_large: "error.too_large",
    identifier_prefix_not_served: "error.prefix_not_served",
    identifier_exists: "error.identifier_exists",
    identifier_filing_transition: "error.filing_transition",
    identifier_template_invalid: "error.template_invalid",
    identifier_template_violation: "error.template_violation",
    alarm_transition_invalid: "error.alarm_transition",
    service_unavailable: "error.unavailable",
  };

  function errorMessage(err) {
    if (!(err instanceof ApiError)) return t("error.network");
    let key = ERROR_KEYS[err.code];
    if (!key) key = err.status >= 500 ? "error.server" : "error.generic";
    return t(key, { code: err.code || err.status });
  }

  /* ---------- live streams (server-sent events over fetch, so the token goes in a header) ---------- */

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /* Parse one SSE block ("event: x\ndata: {...}") into [name, data]; comments give null. */
  function parseEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    try {
      return [name, JSON.parse(data.join("\n"))];
    } catch (e) {
      return [name, data.join("\n")];
    }
  }

  /*
   * Follow an SSE endpoint; onEvent(name, data) for each event, onState("open"|"retrying"|"closed").
   * Reconnects with back-off after a drop or a server error; gives up on 403/404. Returns {close()}.
   */
  function stream(path, onEvent, onState) {
    let stopped = false;
    let controller = null;
    const state = (s) => onState && onState(s);
    async function connect() {
      const expires = Number(store.getItem("gy_expires") || 0);
      if (expires && expires - Date.now() < 30000) await refreshOnce();
      controller = new AbortController();
      const r = await fetch(path, {
        headers: { Authorization: "Bearer " + session.access(), Accept: "text/event-stream" },
        signal: controller.signal,
        cache: "no-store",
      });
      if (r.status === 401 && (await refreshOnce())) return "again";
      if (r.status === 401) {
        session.clear();
        toLogin("expired");
        return "stop";
      }
      if (r.status === 403 || r.status === 404) return "stop";
      if (!r.ok || !r.body) return "retry";
      state("open");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return "retry";
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const parsed = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (parsed) {
            try {
              onEvent(parsed[0], parsed[1]);
            } catch (err) {
              console.error("gongyun: stream handler failed", err);
            }
          }
        }
      }
    }
    (async () => {
      let delay = 1000;
      while (!stopped) {
        let outcome;
        try {
          outcome = await connect();
          if (outcome === "again") continue;
        } catch (e) {
          outcome = "retry";
        }
        if (stopped || outcome === "stop") break;
        state("retrying");
        await sleep(delay);
        delay = Math.min(delay * 2, 10000);
      }
      state("closed");
    })();
    return {
      close() {
        stopped = true;
        if (controller) controller.abort();
      },
    };
  }

  /* ---------- alarm banner (every page) ---------- */

  /* Alarm transitions from the one shared stream, for pages: hub.addEventListener("alarm", e => e.detail). */
  const alarmHub = new EventTarget();

  async function refreshBanner() {
    const banner = $("#gy-alarm-banner");
    let alarms;
    try {
      alarms = items(await api("GET", "/api/v1/alarms?active=true"));
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
    stream("/api/v1/alarms/stream", (name, data) => {
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

  /* ---------- shared widgets ---------- */

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
      flash("error", errorMessage(err));
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
    if (session.access() && !reason) {
      location.replace(safeNext());
      return;
    }
    if (reason === "expired") flash("info", t("login.session_expired"));
    if (reason === "signed_out") flash("info", t("login.signed_out"));
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
          session.save(await r.json());
          location.assign(safeNext());
          return;
        }
        let problem = null;
        try {
          problem = await r.json();
        } catch (e) {
          problem = null;
        }
        const err = new ApiError(r.status, problem);
        if (r.status === 401) err.code = "invalid_credentials";
        flash("error", errorMessage(err));
        $("#password", form).select();
      });
    });
    $("#username", form).focus();
  }

  /* ---------- authenticated shell ---------- */

  async function initShell() {
    if (!session.access()) {
      toLogin();
      return null;
    }
    let me;
    try {
      me = await api("GET", "/api/v1/me");
    } catch (err) {
      document.body.classList.remove("gy-pending");
      flash("error", errorMessage(err));
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
    const token = store.getItem("gy_refresh");
    try {
      await fetch("/api/v1/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + session.access() },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch (e) {
      /* the local session is cleared either way */
    }
    session.clear();
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
        flash("error", errorMessage(err));
      }
    }
    document.body.dataset.ready = "true";
  }

  window.Gongyun = {
    t, $, el, api, items, errorMessage, flash, roleName, permName, formatDate, badge, table, formData,
    submitting, can, pages, stream, alarmHub, formatNumber, formatTime, sleep, LANG,
  };
  /* Deferred page scripts run before DOMContentLoaded, so every page has registered by then. */
  document.addEventListener("DOMContentLoaded", start);
})();
