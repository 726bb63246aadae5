/* Gongyun console: the identifiers page (look up, register, prefixes and filing, templates). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, items, errorMessage, flash, badge, table, formData, submitting, can, pages } = G;

  const FORMATS = ["string", "hex", "base64", "admin", "vlist", "site", "key"];
  const TYPES = ["URL", "EMAIL", "HS_ADMIN", "HS_ALIAS", "GY_KIND", "GY_ASSET", "GY_DEVICE", "GY_TAG", "GY_LOT", "GY_PRODUCT", "GY_SERIAL", "GS1_GTIN", "OID", "ECODE"];
  const STATUS_KEYS = {
    submitted: "filing.submitted",
    verified: "filing.verified",
    active: "filing.active",
    rejected: "filing.rejected",
    suspended: "filing.suspended",
  };
  const STATUS_KIND = { submitted: "info", verified: "info", active: "ok", rejected: "bad", suspended: "warn" };
  /* The filing workflow: the next statuses of each status, with the button that moves there. */
  const NEXT = {
    submitted: ["verified", "rejected"],
    verified: ["active", "rejected"],
    active: ["suspended"],
    suspended: ["active"],
    rejected: [],
  };
  const MOVE_KEYS = {
    verified: "action.verify",
    active: "action.activate",
    rejected: "action.reject",
    suspended: "action.suspend",
  };
  const KIND_KEYS = { top: "prefix.kind.top", secondary: "prefix.kind.secondary", enterprise: "prefix.kind.enterprise" };
  const PERM_KEYS = ["perm.admin_read", "perm.admin_write", "perm.public_read", "perm.public_write"];
  const EXAMPLE_TEMPLATE = {
    prefix: "88.100.1",
    name: "product",
    description: "",
    allowExtra: true,
    items: [
      { type: "GY_PRODUCT", required: true, format: "string", maxLength: 200 },
      { type: "URL", required: false, format: "string" },
    ],
  };

  let me = null;

  function problems(err) {
    const list = (err && err.problem && (err.problem.errors || [])) || [];
    if (!list.length) return null;
    return el(
      "ul",
      { class: "problem-list" },
      list.map((e) => el("li", null, el("code", null, e.field || e.type || (e.loc || []).join(".") || "—"), " ", e.message || e.msg || "")),
    );
  }

  /* ---------- look up ---------- */

  function permissions(bits) {
    const value = bits || "1110";
    return el(
      "span",
      { class: "perm-bits", title: value },
      PERM_KEYS.filter((_, i) => value[i] === "1").map((key) => el("span", { class: "chip" }, t(key))),
    );
  }

  function dataText(v) {
    const data = v.data || {};
    return typeof data.value === "string" ? data.value : JSON.stringify(data.value);
  }

  function showRecord(rec) {
    const columns = [
      { label: "field.index", render: (v) => String(v.index) },
      { label: "field.type", render: (v) => el("code", null, v.type) },
      { label: "field.format", render: (v) => (v.data || {}).format || "string" },
      { label: "field.data", render: (v) => el("span", { class: "value-data" }, dataText(v)) },
      { label: "field.ttl", render: (v) => G.formatNumber(v.ttl, 0) },
      { label: "field.permissions", render: (v) => permissions(v.permissions) },
    ];
    $("#lookup-result").replaceChildren(
      el(
        "dl",
        { class: "facts", id: "record-facts" },
        el("dt", null, t("field.handle")), el("dd", null, el("code", { id: "record-handle" }, rec.handle)),
        el("dt", null, t("field.version")), el("dd", null, String(rec.version || 1)),
        el("dt", null, t("field.updated")), el("dd", null, G.formatTime(rec.updatedAt)),
      ),
      el("div", { class: "table-wrap" }, table(columns, rec.values || [], "ids.no_values")),
    );
  }

  async function lookup(handle) {
    try {
      showRecord(await api("GET", "/api/v1/identifiers/records/" + handle.split("/").map(encodeURIComponent).join("/")));
    } catch (err) {
      const msg = err.status === 404 ? t("ids.not_found", { handle }) : errorMessage(err);
      $("#lookup-result").replaceChildren(el("p", { class: "alert alert-info" }, msg));
    }
  }

  /* ---------- register ---------- */

  function valueRow(index, type) {
    const typeInput = el("input", { name: "type", list: "gy-types", required: true, maxlength: "255", value: type || "", "aria-label": t("field.type"), spellcheck: "false" });
    const format = el("select", { name: "format", "aria-label": t("field.format") }, FORMATS.map((f) => el("option", { value: f }, f)));
    const data = el("input", { name: "data", required: true, "aria-label": t("field.data"), spellcheck: "false" });
    const ttl = el("input", { name: "ttl", type: "number", min: "0", value: "86400", "aria-label": t("field.ttl") });
    const pub = el("input", { name: "public", type: "checkbox", checked: true });
    const row = el(
      "div",
      { class: "value-row" },
      el("label", null, t("field.index"), el("input", { name: "index", type: "number", min: "1", value: String(index), required: true })),
      el("label", null, t("field.type"), typeInput),
      el("label", null, t("field.format"), format),
      el("label", { class: "grow" }, t("field.data"), data),
      el("label", null, t("field.ttl"), ttl),
      el("label", { class: "check" }, pub, t("perm.public_read")),
      el("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => row.remove(), title: t("action.remove") }, "×"),
    );
    return row;
  }

  function collectValues() {
    return Array.from(document.querySelectorAll("#register-values .value-row")).map((row) => {
      const get = (name) => row.querySelector("[name=" + name + "]");
      const format = get("format").value;
      let value = get("data").value;
      if (format === "admin" || format === "vlist" || format === "site") {
        try {
          value = JSON.parse(value);
        } catch (e) {
          /* sent as text: the server names the field in its answer */
        }
      }
      return {
        index: Number(get("index").value),
        type: get("type").value.trim(),
        data: { format, value },
        ttl: Number(get("ttl").value || 86400),
        permissions: get("public").checked ? "1110" : "1100",
      };
    });
  }

  function initRegister() {
    const form = $("#register-form");
    if (!can(me, "identifiers:write")) {
      $("#id-register").hidden = true;
      return;
    }
    document.body.append(el("datalist", { id: "gy-types" }, TYPES.map((type) => el("option", { value: type }))));
    const box = $("#register-values");
    box.append(valueRow(1, "URL"));
    $("#register-add").addEventListener("click", () => box.append(valueRow(box.children.length + 1, "")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      $("#register-errors").replaceChildren();
      submitting(form, async () => {
        const handle = $("#register-handle").value.trim();
        const path = "/api/v1/identifiers/records/" + handle.split("/").map(encodeURIComponent).join("/");
        try {
          const res = await api("PUT", path, { values: collectValues(), overwrite: $("#register-overwrite").checked });
          flash("success", t(res.created ? "ids.registered" : "ids.updated", { handle: res.handle }));
          $("#lookup-handle").value = res.handle;
          await lookup(res.handle);
        } catch (err) {
          const list = problems(err);
          if (list) $("#register-errors").replaceChildren(list);
          throw err;
        }
      });
    });
  }

  /* ---------- prefixes and templates ---------- */

  async function loadPrefixes() {
    const rows = items(await api("GET", "/api/v1/identifiers/prefixes"));
    const columns = [
      { label: "field.prefix", render: (p) => el("code", null, p.prefix) },
      { label: "field.kind", render: (p) => t(KIND_KEYS[p.kind] || "prefix.kind.enterprise") },
      {
        label: "field.status",
        render: (p) => {
          const b = badge(STATUS_KIND[p.status] || "muted", t(STATUS_KEYS[p.status] || "filing.submitted"));
          b.dataset.status = p.status;
          return b;
        },
      },
      { label: "field.org_name", render: (p) => p.orgName || "—" },
      { label: "field.updated", render: (p) => G.formatTime(p.updatedAt) },
      {
        label: "field.actions",
        render: (p) =>
          can(me, "identifiers:admin")
            ? el(
                "span",
                { class: "actions" },
                (NEXT[p.status] || []).map((next) =>
                  el(
                    "button",
                    {
                      type: "button",
                      class: "btn btn-small" + (next === "rejected" || next === "suspended" ? " btn-danger" : ""),
                      "data-prefix": p.prefix,
                      "data-move": next,
                      onclick: () => move(p.prefix, next),
                    },
                    t(MOVE_KEYS[next]),
                  ),
                ),
              )
            : "",
      },
    ];
    $("#prefix-table").replaceChildren(table(columns, rows, "ids.prefixes.empty"));
  }

  async function move(prefix, status) {
    try {
      await api("POST", "/api/v1/identifiers/prefixes/" + encodeURIComponent(prefix) + "/status", { status });
      flash("success", t("ids.prefixes.moved", { prefix, status: t(STATUS_KEYS[status]) }));
      await loadPrefixes();
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  function initPrefixForm() {
    const form = $("#prefix-form");
    form.hidden = !can(me, "identifiers:admin");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, async () => {
        const data = formData(form);
        await api("POST", "/api/v1/identifiers/prefixes", data);
        flash("success", t("ids.prefixes.filed", { prefix: data.prefix }));
        form.reset();
        await loadPrefixes();
      });
    });
  }

  function editTemplate(tpl) {
    const body = { ...tpl };
    delete body.version;
    $("#template-json").value = JSON.stringify(body, null, 2);
    $("#template-editor-title").textContent = tpl.name ? t("ids.templates.editing", { name: tpl.prefix + " · " + tpl.name }) : t("ids.templates.editor");
    $("#template-errors").replaceChildren();
    $("#template-json").focus();
  }

  async function loadTemplates() {
    const rows = items(await api("GET", "/api/v1/identifiers/templates"));
    const columns = [
      { label: "field.prefix", render: (x) => el("code", null, x.prefix) },
      { label: "field.name", render: (x) => el("strong", null, x.name) },
      { label: "field.version", render: (x) => String(x.version) },
      { label: "field.items", render: (x) => (x.items || []).map((i) => i.type + (i.required ? "*" : "")).join(", ") },
      {
        label: "field.actions",
        render: (x) =>
          can(me, "identifiers:write")
            ? el("button", { type: "button", class: "btn btn-small", "data-template": x.prefix + "/" + x.name, onclick: () => editTemplate(x) }, t("action.edit"))
            : "",
      },
    ];
    $("#template-table").replaceChildren(table(columns, rows, "ids.templates.empty"));
  }

  function initTemplateForm() {
    const form = $("#template-form");
    form.hidden = !can(me, "identifiers:write");
    $("#template-new").addEventListener("click", () => editTemplate(EXAMPLE_TEMPLATE));
    $("#template-json").value = JSON.stringify(EXAMPLE_TEMPLATE, null, 2);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      $("#template-errors").replaceChildren();
      let body;
      try {
        body = JSON.parse($("#template-json").value);
      } catch (e) {
        $("#template-errors").replaceChildren(el("p", { class: "alert alert-error" }, t("ids.templates.bad_json")));
        return;
      }
      submitting(form, async () => {
        try {
          const saved = await api("POST", "/api/v1/identifiers/templates", body);
          flash("success", t("ids.templates.saved", { name: saved.name, version: saved.version }));
          await loadTemplates();
        } catch (err) {
          const list = problems(err);
          if (list) $("#template-errors").replaceChildren(list);
          throw err;
        }
      });
    });
  }

  async function initIdentifiers(user) {
    me = user;
    if (!can(me, "identifiers:read")) {
      $("#lookup-result").replaceChildren(el("p", { class: "alert alert-info" }, t("error.forbidden")));
      return;
    }
    const form = $("#lookup-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, () => lookup($("#lookup-handle").value.trim()));
    });
    initRegister();
    initPrefixForm();
    initTemplateForm();
    const results = await Promise.allSettled([loadPrefixes(), loadTemplates()]);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) flash("error", errorMessage(failed.reason));
  }

  pages.identifiers = initIdentifiers;
})();
