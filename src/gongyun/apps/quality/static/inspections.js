/* Quality app: inspection entry (/apps/quality/inspections). An operator records a lot's
 * measurements or defect counts, or uploads a CSV; a refusal is shown in the form it came from,
 * with the API's problem details (every bad CSV line named). A lot's inspections are listed.
 * English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const TEXT = {
    en: {
      entry: "Record inspections for a lot", lot: "Lot", characteristic: "Characteristic",
      kind: "What was inspected", variables: "Measurements", attributes: "Defect count",
      values: "Measured values (one per line, or separated by spaces or commas)",
      sample: "Sample size", defects: "Defectives / defects", record: "Record",
      recorded: (n, lot) => `Recorded ${n} inspection${n === 1 ? "" : "s"} for lot ${lot}.`,
      csv: "Upload a CSV", csvHelp: "Header: lot,characteristic,value — or lot,characteristic,sample_size,defects; recorded_at optional.",
      file: "CSV file", upload: "Upload", refused: "Refused", list: "Inspections of a lot", show: "Show",
      time: "Recorded", value: "Value", none: "No inspections for this lot.",
      notNumber: (v) => `"${v}" is not a number`, noValues: "Enter at least one measured value.",
      noFile: "Choose a CSV file first.",
    },
    "zh-CN": {
      entry: "录入批次检验", lot: "批次", characteristic: "检验特性",
      kind: "检验类型", variables: "计量值", attributes: "缺陷计数",
      values: "测量值(每行一个,或以空格、逗号分隔)",
      sample: "样本量", defects: "不合格品数 / 缺陷数", record: "记录",
      recorded: (n, lot) => `已为批次 ${lot} 记录 ${n} 条检验。`,
      csv: "上传 CSV", csvHelp: "表头:lot,characteristic,value,或 lot,characteristic,sample_size,defects;recorded_at 可选。",
      file: "CSV 文件", upload: "上传", refused: "被拒绝", list: "查看批次检验记录", show: "查看",
      time: "记录时间", value: "数值", none: "该批次没有检验记录。",
      notNumber: (v) => `"${v}" 不是数字`, noValues: "请至少输入一个测量值。",
      noFile: "请先选择 CSV 文件。",
    },
  };
  const T = TEXT[LANG] || TEXT.en;
  const BASE = "/api/v1/apps/quality";

  /* The refusal inside the form: the problem's detail and, for field errors, each field. */
  function problem(box, err) {
    const p = (err && err.problem) || {};
    const lines = (p.errors || []).map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".")}: ${e.msg}`);
    const detail = p.detail || (err instanceof G.ApiError ? G.errorMessage(err) : String(err.message || err));
    box.replaceChildren(el("div", { class: "alert alert-error form-problem", role: "alert" },
      el("strong", null, `${T.refused}${p.reason ? " (" + p.reason + ")" : ""}: `), lines.length ? "" : detail,
      lines.length ? el("ul", null, lines.map((l) => el("li", null, l))) : null));
  }

  function ok(box, message) {
    box.replaceChildren(el("div", { class: "alert alert-success form-done", role: "status" }, message));
  }

  function field(label, input) {
    return el("label", null, label, input);
  }

  function entryForm() {
    const box = el("div", { class: "form-feedback" });
    const lot = el("input", { name: "lot", required: true, maxlength: 200 });
    const ch = el("input", { name: "characteristic", required: true, maxlength: 200 });
    const kind = el("select", { name: "kind" },
      el("option", { value: "variables" }, T.variables), el("option", { value: "attributes" }, T.attributes));
    const values = el("textarea", { name: "values", rows: 4 });
    const sample = el("input", { name: "sample_size", type: "number", step: "any" });
    const defects = el("input", { name: "defects", type: "number", step: "any" });
    const vars = el("div", { class: "fields" }, field(T.values, values));
    const attrs = el("div", { class: "fields", hidden: true }, field(T.sample, sample), field(T.defects, defects));
    kind.addEventListener("change", () => {
      vars.hidden = kind.value !== "variables";
      attrs.hidden = kind.value === "variables";
    });
    const form = el("form", { class: "form", id: "qi-entry", novalidate: true },
      el("div", { class: "fields" }, field(T.lot, lot), field(T.characteristic, ch), field(T.kind, kind)),
      vars, attrs, box, el("button", { class: "btn btn-primary", type: "submit" }, T.record));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let body;
      if (kind.value === "variables") {
        const parts = values.value.split(/[\s,;]+/).filter(Boolean);
        const bad = parts.find((v) => !Number.isFinite(Number(v)));
        if (bad !== undefined) return problem(box, new Error(T.notNumber(bad)));
        if (!parts.length) return problem(box, new Error(T.noValues));
        body = parts.map((v) => ({ lot: lot.value.trim(), characteristic: ch.value.trim(), value: Number(v) }));
      } else {
        body = [{
          lot: lot.value.trim(), characteristic: ch.value.trim(),
          sample_size: sample.value === "" ? null : Number(sample.value),
          defects: defects.value === "" ? null : Number(defects.value),
        }];
      }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const r = await api("POST", `${BASE}/inspections`, body);
        ok(box, T.recorded(r.recorded, lot.value.trim()));
        values.value = "";
      } catch (err) {
        problem(box, err);
      } finally {
        button.disabled = false;
      }
    });
    return el("section", { class: "card" }, el("h3", null, T.entry), form);
  }

  function csvForm() {
    const box = el("div", { class: "form-feedback" });
    const file = el("input", { name: "csv", type: "file", accept: ".csv,text/csv" });
    const form = el("form", { class: "form", id: "qi-csv", novalidate: true },
      el("p", { class: "muted" }, T.csvHelp), el("div", { class: "fields" }, field(T.file, file)), box,
      el("button", { class: "btn btn-primary", type: "submit" }, T.upload));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!file.files.length) return problem(box, new Error(T.noFile));
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const text = await file.files[0].text();
        const r = await api("POST", `${BASE}/inspections/csv`, new Blob([text], { type: "text/csv" }));
        ok(box, T.recorded(r.recorded, file.files[0].name));
      } catch (err) {
        problem(box, err);
      } finally {
        button.disabled = false;
      }
    });
    return el("section", { class: "card" }, el("h3", null, T.csv), form);
  }

  function lotList() {
    const lot = el("input", { name: "lot" });
    const out = el("div", { id: "qi-list" });
    const form = el("form", { class: "form-row", id: "qi-lookup" }, lot,
      el("button", { class: "btn", type: "submit" }, T.show));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const rows = G.items(await api("GET", `${BASE}/inspections?${new URLSearchParams({ lot: lot.value.trim() })}`));
        out.replaceChildren(rows.length ? el("table", { class: "table" },
          el("thead", null, el("tr", null, [T.time, T.lot, T.characteristic, T.value, T.sample, T.defects].map((h) => el("th", null, h)))),
          el("tbody", null, rows.map((r) => el("tr", null,
            el("td", null, G.formatTime(r.recorded_at)), el("td", null, r.lot), el("td", null, r.characteristic),
            el("td", null, r.value === null ? "—" : G.formatNumber(r.value)),
            el("td", null, r.sample_size === null ? "—" : G.formatNumber(r.sample_size)),
            el("td", null, r.defects === null ? "—" : G.formatNumber(r.defects)))))) : el("p", { class: "muted" }, T.none));
      } catch (err) {
        problem(out, err);
      }
    });
    return el("section", { class: "card" }, el("h3", null, T.list), form, out);
  }

  G.pages["app:quality/inspections"] = async function () {
    const root = document.getElementById("gy-app-root");
    root.replaceChildren(el("div", { class: "grid grid-2" }, entryForm(), csvForm()), lotList());
  };
})();
