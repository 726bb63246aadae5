/* Gongyun console: the alarms page (ISA-18.2 states, acknowledge, shelve, history, live updates).
 * When the alarm engine runs in another process, an action may be answered 202: the row shows
 * "pending" and the command is polled until the engine applied or rejected it. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, items, errorMessage, flash, badge, table, can, pages } = G;

  const STATE_KEYS = {
    normal: "alarm.state.normal",
    unack_active: "alarm.state.unack_active",
    ack_active: "alarm.state.ack_active",
    unack_rtn: "alarm.state.unack_rtn",
    shelved: "alarm.state.shelved",
  };
  const STATE_KIND = { normal: "ok", unack_active: "bad", ack_active: "warn", unack_rtn: "info", shelved: "muted" };
  const PRIORITY_KEYS = {
    low: "alarm.priority.low",
    medium: "alarm.priority.medium",
    high: "alarm.priority.high",
    critical: "alarm.priority.critical",
  };
  const PRIORITY_KIND = { low: "muted", medium: "info", high: "warn", critical: "bad" };
  const LIVE_KEYS = { open: "live.open", retrying: "live.retrying", closed: "live.closed" };

  function stateBadge(state) {
    const b = badge(STATE_KIND[state] || "muted", t(STATE_KEYS[state] || "alarm.state.normal"));
    b.dataset.state = state;
    return b;
  }

  function priorityBadge(priority) {
    return badge(PRIORITY_KIND[priority] || "muted", t(PRIORITY_KEYS[priority] || "alarm.priority.medium"));
  }

  const COMMANDS = "/api/v1/alarms/commands/";
  /* The engine drops a request it has not taken up within 10 minutes (alarm_command_expired). */
  const POLL_LIMIT_MS = 11 * 60 * 1000;
  const DONE_KEYS = { ack: "alarms.acked", shelve: "alarms.shelved", unshelve: "alarms.unshelved" };

  let me = null;
  let rules = {};
  let since = {};
  /* rule_id -> the action waiting for the engine */
  const pending = {};

  function actionButtons(a) {
    if (!can(me, "alarms:ack")) return "";
    const out = [];
    const attrs = (action) => ({
      type: "button",
      class: "btn btn-small",
      "data-action": action,
      "data-rule": a.rule_id,
      disabled: a.rule_id in pending,
    });
    if (a.state === "unack_active" || a.state === "unack_rtn") {
      out.push(el("button", { ...attrs("ack"), class: "btn btn-small btn-primary", onclick: () => act(a, "ack") }, t("action.ack")));
    }
    if (a.state === "shelved") {
      out.push(el("button", { ...attrs("unshelve"), onclick: () => act(a, "unshelve") }, t("action.unshelve")));
    } else {
      out.push(el("button", { ...attrs("shelve"), onclick: () => act(a, "shelve") }, t("action.shelve")));
    }
    return el("span", { class: "actions" }, out);
  }

  /* Poll a queued command until the engine applied or rejected it; null when it is still queued. */
  async function outcome(href) {
    const end = Date.now() + POLL_LIMIT_MS;
    let delay = 400;
    while (Date.now() < end) {
      await G.sleep(delay);
      const command = await api("GET", href);
      if (command && command.status !== "pending") return command;
      delay = Math.min(delay * 1.5, 5000);
    }
    return null;
  }

  function commandHref(answer) {
    const href = answer.data && answer.data.href;
    if (typeof href === "string" && href.startsWith(COMMANDS)) return href;
    return COMMANDS + encodeURIComponent(answer.data.command_id);
  }

  async function act(alarm, action) {
    if (alarm.rule_id in pending) return;
    const body = action === "shelve" ? { duration_s: Number($("#alarms-shelve-duration").value) } : undefined;
    const name = alarm.name;
    try {
      const answer = await G.request("POST", "/api/v1/alarms/" + encodeURIComponent(alarm.rule_id) + "/" + action, body);
      if (answer.status === 202) {
        pending[alarm.rule_id] = action;
        flash("info", t("alarms.pending", { name }));
        await loadCurrent();
        const command = await outcome(commandHref(answer));
        delete pending[alarm.rule_id];
        if (!command) flash("info", t("alarms.still_pending", { name }));
        else if (command.status === "rejected") {
          const error = command.error || {};
          flash("error", errorMessage(new G.ApiError(409, { code: error.code, detail: error.message })));
        } else flash("success", t(DONE_KEYS[action], { name }));
      } else {
        flash("success", t(DONE_KEYS[action], { name }));
      }
    } catch (err) {
      delete pending[alarm.rule_id];
      flash("error", errorMessage(err));
    }
    try {
      await Promise.all([loadCurrent(), loadHistory()]);
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  function subject(a) {
    const rule = rules[a.rule_id];
    if (!rule) return "—";
    if (rule.tag) return el("code", null, rule.tag);
    if (rule.inputs) return el("code", null, Object.values(rule.inputs).join(", "));
    return "—";
  }

  async function loadCurrent() {
    const activeOnly = $("#alarms-active-only").checked;
    const alarms = items(await api("GET", "/api/v1/alarms" + (activeOnly ? "?active=true" : "")));
    const columns = [
      { label: "field.priority", render: (a) => priorityBadge(a.priority) },
      { label: "field.name", render: (a) => el("strong", { title: a.message || null }, a.name) },
      { label: "field.tag", render: subject },
      {
        label: "field.state",
        render: (a) => [stateBadge(a.state), a.rule_id in pending ? badge("pending", t("alarms.pending.badge")) : null],
      },
      { label: "field.value", render: (a) => G.formatNumber(a.value) },
      {
        label: "field.since",
        render: (a) =>
          a.state === "shelved" && a.shelved_until
            ? t("alarms.shelved_until", { time: G.formatTime(a.shelved_until) })
            : G.formatTime(since[a.rule_id]),
      },
      { label: "field.actions", render: actionButtons },
    ];
    const box = $("#alarms-table");
    box.replaceChildren(table(columns, alarms, activeOnly ? "alarms.none_active" : "alarms.none"));
    const rows = box.querySelectorAll("tbody tr");
    alarms.forEach((a, i) => {
      rows[i].dataset.rule = a.rule_id;
      rows[i].dataset.state = a.state;
      if (a.rule_id in pending) rows[i].dataset.pending = pending[a.rule_id];
    });
  }

  async function loadHistory() {
    const events = items(await api("GET", "/api/v1/alarms/history?limit=100"));
    since = {};
    for (const e of events) if (!(e.rule_id in since)) since[e.rule_id] = e.ts;
    const columns = [
      { label: "field.time", render: (e) => G.formatTime(e.ts) },
      { label: "field.name", render: (e) => e.name },
      { label: "field.priority", render: (e) => priorityBadge(e.priority) },
      { label: "field.transition", render: (e) => el("span", { class: "transition" }, stateBadge(e.before), " → ", stateBadge(e.after)) },
      { label: "field.user", render: (e) => e.user || t("alarms.system") },
      { label: "field.value", render: (e) => G.formatNumber(e.value) },
    ];
    $("#history-table").replaceChildren(table(columns, events, "alarms.history.empty"));
  }

  async function loadRules() {
    rules = {};
    for (const r of items(await api("GET", "/api/v1/alarms/rules"))) rules[r.id] = r;
  }

  async function initAlarms(user) {
    me = user;
    if (!can(me, "alarms:read")) {
      $("#alarms-table").replaceChildren(el("p", { class: "alert alert-info" }, t("error.forbidden")));
      $("#alarms-history").hidden = true;
      return;
    }
    $("#alarms-active-only").addEventListener("change", () => loadCurrent().catch((err) => flash("error", errorMessage(err))));
    await loadRules();
    await loadHistory();
    await loadCurrent();
    let timer = null;
    G.alarmHub.addEventListener("alarm", (event) => {
      const ev = event.detail || {};
      if (ev.rule_id && !(ev.rule_id in rules)) loadRules().catch(() => {});
      clearTimeout(timer);
      timer = setTimeout(() => {
        loadHistory()
          .then(loadCurrent)
          .catch((err) => flash("error", errorMessage(err)));
      }, 150);
    });
    const live = $("#alarms-live");
    const show = (s) => {
      if (!s) return;
      live.textContent = t(LIVE_KEYS[s] || "live.connecting");
      live.className = "badge " + (s === "open" ? "badge-ok" : "badge-warn");
      live.dataset.state = s;
    };
    show(G.alarmHub.state);
    G.alarmHub.addEventListener("state", (event) => show(event.detail));
  }

  pages.alarms = initAlarms;
})();
