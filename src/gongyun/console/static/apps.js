/* Gongyun console: the Apps page (catalogue cards; install, enable, disable and configure per tenant). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, errorMessage, flash, badge, can, permName, pages, LANG } = G;

  const STATUS = {
    running: ["ok", "apps.status.running"],
    loaded: ["info", "apps.status.loaded"],
    stopped: ["muted", "apps.status.stopped"],
    failed: ["bad", "apps.status.failed"],
    missing: ["warn", "apps.status.missing"],
  };
  const STATE = {
    enabled: ["ok", "apps.state.enabled"],
    disabled: ["muted", "apps.state.disabled"],
    not_installed: ["muted", "apps.state.not_installed"],
  };
  const CLASS_KEYS = { general: "class.general", important: "class.important", core: "class.core" };

  function pair(table, value) {
    const found = table[value];
    return found ? [found[0], t(found[1])] : ["muted", String(value)];
  }

  function local(texts) {
    return (texts && (texts[LANG] || texts.en)) || "";
  }

  function facts(app) {
    const rows = [
      ["field.version", app.version || "—"],
      ["field.permissions", app.permissions.length ? app.permissions.map(permName).join(", ") : "—"],
      ["apps.reads", app.reads.join(", ") || "—"],
      ["apps.writes", app.writes.join(", ") || "—"],
      ["field.classification", CLASS_KEYS[app.classification] ? t(CLASS_KEYS[app.classification]) : "—"],
    ];
    return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", null, t(k)), el("dd", null, v)]));
  }

  function actions(me, app) {
    const box = el("div", { class: "card-actions" });
    const usable = app.status !== "failed" && app.status !== "missing";
    if (app.state === "enabled") {
      app.pages.forEach((p) => box.append(el("a", { class: "btn btn-small", href: p.url, "data-page": p.slug }, local(p.title))));
    }
    if (!can(me, "apps:admin")) return box;
    if (app.state === "enabled") {
      box.append(button("disable", t("action.disable"), () => change(me, app, { enabled: false }, "apps.disabled")));
    } else if (usable) {
      box.append(button("enable", t("action.enable"), () => change(me, app, { enabled: true }, "apps.enabled"), true));
    }
    if (usable && app.settings_schema && app.state !== "not_installed") {
      box.append(button("configure", t("apps.configure"), () => configure(me, app)));
    }
    return box;
  }

  function button(action, label, onclick, primary) {
    return el("button", { type: "button", class: "btn btn-small" + (primary ? " btn-primary" : ""), "data-action": action, onclick }, label);
  }

  function card(me, app) {
    const problems = app.problems.length
      ? el("ul", { class: "app-problems alert alert-error" }, app.problems.map((p) => el("li", null, p)))
      : null;
    return el(
      "article",
      { class: "card app-card", "data-app": app.name, "data-state": app.state, "data-status": app.status },
      el("div", { class: "section-row" },
        el("h3", { class: "app-title" }, local(app.title)),
        el("span", { class: "app-badges" },
          badge(...pair(STATUS, app.status)),
          " ",
          badge(...pair(STATE, app.state)))),
      el("p", { class: "muted app-desc" }, local(app.description)),
      problems,
      facts(app),
      actions(me, app),
    );
  }

  async function load(me) {
    const apps = await api("GET", "/api/v1/apps");
    const box = $("#apps-cards");
    if (!apps.length) {
      box.replaceChildren(el("p", { class: "empty-row" }, t("apps.empty")));
      return;
    }
    box.replaceChildren(...apps.map((app) => card(me, app)));
  }

  async function change(me, app, body, messageKey) {
    try {
      await api("PATCH", "/api/v1/apps/" + encodeURIComponent(app.name), body);
      flash("success", t(messageKey, { name: local(app.title) }));
      await load(me);
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  /* ---------- settings form, built from the app's settings schema ---------- */

  function field(name, spec, value) {
    const label = spec.title || name;
    if (spec.type === "boolean") {
      return el("label", { class: "inline-label" }, el("input", { type: "checkbox", name, checked: !!value }), " ", label);
    }
    if (Array.isArray(spec.enum)) {
      const select = el("select", { name }, spec.enum.map((v) => el("option", { value: v, selected: v === value }, v)));
      return el("label", null, label, select);
    }
    const numeric = spec.type === "integer" || spec.type === "number";
    const input = el("input", {
      name,
      type: numeric ? "number" : "text",
      value: value === undefined || value === null ? "" : value,
      min: spec.minimum,
      max: spec.maximum,
      step: spec.type === "integer" ? 1 : numeric ? "any" : null,
      minlength: spec.minLength,
      maxlength: spec.maxLength,
    });
    return el("label", null, label, input);
  }

  function collect(form, props) {
    const out = {};
    for (const [name, spec] of Object.entries(props)) {
      const input = form.elements.namedItem(name);
      if (!input) continue;
      if (spec.type === "boolean") out[name] = input.checked;
      else if (spec.type === "integer" || spec.type === "number") out[name] = input.value === "" ? null : Number(input.value);
      else out[name] = input.value;
    }
    return out;
  }

  function configure(me, app) {
    const dialog = $("#app-settings");
    const form = $("#app-settings-form");
    const props = (app.settings_schema && app.settings_schema.properties) || {};
    const current = (app.installation && app.installation.settings) || {};
    $("#app-settings-title").textContent = t("apps.settings_of", { name: local(app.title) });
    $("#app-settings-fields").replaceChildren(...Object.entries(props).map(([n, s]) => field(n, s, n in current ? current[n] : s.default)));
    const errors = $("#app-settings-errors");
    errors.hidden = true;
    const save = async (event) => {
      if (event.submitter && event.submitter.value !== "ok") return;
      event.preventDefault();
      try {
        await api("PATCH", "/api/v1/apps/" + encodeURIComponent(app.name), { settings: collect(form, props) });
        dialog.close();
        flash("success", t("apps.saved", { name: local(app.title) }));
        await load(me);
      } catch (err) {
        const list = (err.problem && err.problem.errors) || [];
        errors.textContent = list.length ? list.map((e) => e.loc.join(".") + ": " + e.msg).join("; ") : errorMessage(err);
        errors.hidden = false;
      }
    };
    form.onsubmit = save;
    dialog.showModal();
  }

  pages.apps = load;
})();
