/* Gongyun console: the administration page (users, API keys, tenants). */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, $, el, api, items, errorMessage, flash, roleName, formatDate, badge, table } = G;
  const { formData, submitting, can, pages } = G;

  function restrictRoles(me) {
    const mine = Number(($("#role-ranks") && JSON.parse($("#role-ranks").textContent)[me.role]) || 0);
    document.querySelectorAll("select[name=role] option").forEach((option) => {
      const rank = Number(option.dataset.rank);
      const allowed = option.value === "platform-admin" ? me.role === "platform-admin" : rank <= mine;
      option.disabled = !allowed;
      option.hidden = !allowed;
    });
    document.querySelectorAll("select[name=role]").forEach((select) => {
      if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
        const first = Array.from(select.options).find((o) => !o.disabled);
        if (first) select.value = first.value;
      }
    });
  }

  function confirmDialog(message, confirmLabel) {
    const dialog = $("#gy-confirm");
    $("#gy-confirm-text", dialog).textContent = message;
    $("#gy-confirm-ok", dialog).textContent = confirmLabel;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
  }

  async function loadUsers(me) {
    const box = $("#users-table");
    const users = items(await api("GET", "/api/v1/users"));
    const columns = [
      { label: "field.username", render: (u) => el("strong", null, u.username) },
      { label: "field.display_name", render: (u) => u.display_name || "—" },
      { label: "field.role", render: (u) => roleName(u.role) },
      {
        label: "field.status",
        render: (u) => (u.disabled ? badge("muted", t("status.disabled")) : badge("ok", t("status.active"))),
      },
      { label: "field.created", render: (u) => formatDate(u.created_at) },
      {
        label: "field.actions",
        render: (u) => {
          if (u.id === me.id || !can(me, "users:write")) return "";
          const label = u.disabled ? t("action.enable") : t("action.disable");
          return el("button", {
            type: "button",
            class: "btn btn-small",
            "data-user": u.username,
            onclick: () => toggleUser(me, u),
          }, label);
        },
      },
    ];
    box.replaceChildren(table(columns, users, "admin.users.empty"));
  }

  async function toggleUser(me, user) {
    try {
      await api("PATCH", "/api/v1/users/" + encodeURIComponent(user.id), { disabled: !user.disabled });
      flash("success", t(user.disabled ? "admin.users.enabled" : "admin.users.disabled", { name: user.username }));
      await loadUsers(me);
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  function keyStatus(k) {
    if (k.revoked || k.revoked_at) return badge("muted", t("status.revoked"));
    if (k.expires_at && new Date(k.expires_at).getTime() < Date.now()) return badge("warn", t("status.expired"));
    return badge("ok", t("status.active"));
  }

  async function loadKeys(me) {
    const box = $("#keys-table");
    const keys = items(await api("GET", "/api/v1/apikeys"));
    const columns = [
      { label: "field.name", render: (k) => el("strong", null, k.name) },
      { label: "field.prefix", render: (k) => el("code", null, k.prefix || "") },
      { label: "field.role", render: (k) => roleName(k.role) },
      { label: "field.status", render: keyStatus },
      { label: "field.created", render: (k) => formatDate(k.created_at) },
      { label: "field.expires", render: (k) => (k.expires_at ? formatDate(k.expires_at) : t("admin.keys.never")) },
      {
        label: "field.actions",
        render: (k) => {
          if (k.revoked || k.revoked_at || !can(me, "apikeys:write")) return "";
          return el("button", {
            type: "button",
            class: "btn btn-small btn-danger",
            "data-key": k.name,
            onclick: () => revokeKey(me, k),
          }, t("action.revoke"));
        },
      },
    ];
    box.replaceChildren(table(columns, keys, "admin.keys.empty"));
  }

  async function revokeKey(me, key) {
    const ok = await confirmDialog(t("admin.keys.revoke_confirm", { name: key.name }), t("action.revoke"));
    if (!ok) return;
    try {
      await api("DELETE", "/api/v1/apikeys/" + encodeURIComponent(key.id));
      flash("success", t("admin.keys.revoked", { name: key.name }));
      await loadKeys(me);
    } catch (err) {
      flash("error", errorMessage(err));
    }
  }

  function showNewKey(created) {
    const panel = $("#key-once");
    $("#key-once-value").value = created.key;
    panel.hidden = false;
    $("#key-once-value").select();
  }

  async function copyKey() {
    const input = $("#key-once-value");
    const button = $("#key-once-copy");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (e) {
      input.select();
      document.execCommand("copy");
    }
    button.textContent = t("action.copied");
    setTimeout(() => (button.textContent = t("action.copy")), 2000);
  }

  async function loadTenants() {
    const tenants = items(await api("GET", "/api/v1/tenants"));
    const columns = [
      { label: "field.name", render: (x) => el("strong", null, x.name) },
      { label: "field.id", render: (x) => el("code", null, x.id) },
      { label: "field.created", render: (x) => formatDate(x.created_at) },
    ];
    $("#tenants-table").replaceChildren(table(columns, tenants, "admin.tenants.empty"));
  }

  function guard(section, allowed) {
    $("#" + section + " .section-body").hidden = !allowed;
    $("#" + section + " .section-denied").hidden = allowed;
    return allowed;
  }

  async function initAdmin(me) {
    restrictRoles(me);
    const userForm = $("#user-form");
    const keyForm = $("#key-form");
    $("#key-once-copy").addEventListener("click", copyKey);
    $("#key-once-done").addEventListener("click", () => {
      $("#key-once-value").value = "";
      $("#key-once").hidden = true;
    });
    userForm.hidden = !can(me, "users:write");
    keyForm.hidden = !can(me, "apikeys:write");
    userForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(userForm, async () => {
        const data = formData(userForm);
        await api("POST", "/api/v1/users", data);
        flash("success", t("admin.users.created", { name: data.username }));
        userForm.reset();
        restrictRoles(me);
        await loadUsers(me);
      });
    });
    keyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(keyForm, async () => {
        const data = formData(keyForm);
        if (data.expires_in_days) data.expires_in_days = Number(data.expires_in_days);
        const created = await api("POST", "/api/v1/apikeys", data);
        flash("success", t("admin.keys.created", { name: created.name }));
        showNewKey(created);
        keyForm.reset();
        restrictRoles(me);
        await loadKeys(me);
      });
    });
    const passwordForm = $("#password-form");
    $("#password-username").value = me.username;
    passwordForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(passwordForm, async () => {
        const fields = passwordForm.elements; // not formData(): a password is sent untrimmed
        await api("POST", "/api/v1/me/password", {
          current_password: fields.current_password.value,
          new_password: fields.new_password.value,
        });
        // Every session of the user ended with the change: sign in again with the new password.
        G.session.clear();
        G.toLogin("password_changed");
      });
    });
    const loads = [];
    if (guard("admin-users", can(me, "users:read"))) loads.push(loadUsers(me));
    if (guard("admin-keys", can(me, "apikeys:read"))) loads.push(loadKeys(me));
    if (guard("admin-tenants", can(me, "tenants:read"))) loads.push(loadTenants());
    const results = await Promise.allSettled(loads);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) flash("error", errorMessage(failed.reason));
  }

  pages.admin = initAdmin;
})();
