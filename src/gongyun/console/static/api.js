/* Gongyun console: the JSON API client, the browser session and live streams (loaded right after console.js). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t } = G;
  const store = window.sessionStorage;

  /* ---------- session ---------- */

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
    refreshToken() {
      return store.getItem("gy_refresh");
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
    const params = new URLSearchParams({ next: G.here() });
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

  /* Refresh the access token when it expires within 30 s. */
  async function freshToken() {
    const expires = Number(store.getItem("gy_expires") || 0);
    if (expires && expires - Date.now() < 30000) await refreshOnce();
  }

  /* ---------- API ---------- */

  /* Call the API; resolves to {status, location, data} for 2xx answers, throws ApiError otherwise. */
  async function request(method, path, body) {
    await freshToken();
    const send = () => {
      const headers = { Authorization: "Bearer " + session.access(), Accept: "application/json" };
      const init = { method, headers };
      if (body instanceof Blob) {
        headers["Content-Type"] = body.type || "application/octet-stream"; // a file's text as it is (CSV)
        init.body = body;
      } else if (body !== undefined) {
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
    let data = null;
    if (r.status !== 204) {
      const text = await r.text();
      data = text ? JSON.parse(text) : null;
    }
    return { status: r.status, location: r.headers.get("Location"), data };
  }

  /* Call the API and resolve to the JSON body (null for 204). */
  async function api(method, path, body) {
    return (await request(method, path, body)).data;
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
    alarm_command_expired: "error.alarm_command_expired",
    service_unavailable: "error.unavailable",
    current_password_required: "error.current_password_required",
    current_password_invalid: "error.current_password_invalid",
    last_platform_admin: "error.last_platform_admin",
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
      await freshToken();
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

  Object.assign(G, { session, ApiError, toLogin, request, api, items, errorMessage, sleep, stream });
})();
