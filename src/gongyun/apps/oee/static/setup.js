/* OEE app: setup (/apps/oee/setup). An engineer maps, edits, removes or retires a machine (state from a
 * state tag, a running flag, a speed threshold or counts; good/scrap/total counters; ideal cycle time; micro-stop
 * threshold), edits a line's shift calendar with breaks and planned downtime, and the tenant's
 * reason tree in English and Chinese. A refusal is shown in the form it came from, with the
 * API's problem details. English and 简体中文. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { el, api, LANG } = G;
  const STATES = ["running", "idle", "down_planned", "down_unplanned", "setup"];
  const LOSSES = ["breakdowns", "setup_adjustments", "minor_stops", "reduced_speed", "process_defects", "reduced_yield"];
  const TEXT = {
    en: {
      machines: "Machines", machine: "Add a machine", name: "Name", line: "Line", mode: "State from",
      modes: { state_tag: "a state tag (codes)", running_flag: "a running flag", speed: "a speed threshold", counts: "counts (running while counting)" },
      tag: "Tag (device/tag)", codes: "State codes (one per line: code = state)", threshold: "Speed threshold",
      stopped: "State when not running", period: "Sample period (s)", good: "Good count tag", scrap: "Scrap count tag",
      total: "Total count tag (good = total − scrap)", cycle: "Ideal cycle time (s)", micro: "Micro-stop threshold (s)",
      add: "Add machine", added: (n) => `Machine ${n} added.`, none: "No machines yet.",
      calendar: "Shift calendar", load: "Load", tz: "Time zone", shifts: "Shifts", start: "Start", end: "End",
      breaks: "Breaks (e.g. 12:00-13:00 lunch, 17:00-17:15)", addShift: "Add shift", planned: "Planned downtime",
      reason: "Reason", forMachines: "Machines (names, comma-separated; empty: all)", addPlanned: "Add planned downtime",
      save: "Save", saved: "Saved.", remove: "Remove", loaded: (l) => `Calendar of ${l} loaded.`,
      fresh: (l) => `${l} has no calendar yet: a new one.`,
      reasons: "Reason tree", code: "Code", parent: "Parent", nameEn: "English name", nameZh: "Chinese name", loss: "Loss",
      addReason: "Add reason", refused: "Refused", badBreak: (b) => `break "${b}" is not HH:MM-HH:MM`,
      badCode: (l) => `state code line "${l}" is not code = state`,
      lossNames: { breakdowns: "Breakdowns", setup_adjustments: "Setup and adjustments", minor_stops: "Minor stops",
        reduced_speed: "Reduced speed", process_defects: "Process defects", reduced_yield: "Reduced yield" },
      stateNames: { running: "running", idle: "idle", down_planned: "down (planned)", down_unplanned: "down (unplanned)", setup: "setup" },
      edit: "Edit", editing: (n) => `Edit machine ${n}`, update: "Save changes", cancel: "Cancel", updated: (n) => `Machine ${n} saved.`,
      confirmRemove: "Confirm removal", removed: (n) => `Machine ${n} removed.`, actions: "Actions",
      retire: "Retire", confirmRetire: "Confirm retirement", retired: (n) => `Machine ${n} retired: its stops and history are kept.`,
    },
    "zh-CN": {
      machines: "设备", machine: "添加设备", name: "名称", line: "产线", mode: "状态来源",
      modes: { state_tag: "状态位号(代码)", running_flag: "运行标志", speed: "速度阈值", counts: "计数(计数即运行)" },
      tag: "位号(设备/位号)", codes: "状态代码(每行一个:代码 = 状态)", threshold: "速度阈值",
      stopped: "非运行时的状态", period: "采样周期(秒)", good: "合格品计数位号", scrap: "废品计数位号",
      total: "总数计数位号(合格 = 总数 − 废品)", cycle: "理想节拍(秒)", micro: "小停机阈值(秒)",
      add: "添加设备", added: (n) => `已添加设备 ${n}。`, none: "还没有设备。",
      calendar: "班次日历", load: "载入", tz: "时区", shifts: "班次", start: "开始", end: "结束",
      breaks: "休息(如 12:00-13:00 午餐, 17:00-17:15)", addShift: "添加班次", planned: "计划停机",
      reason: "原因", forMachines: "设备(名称,逗号分隔;留空为全部)", addPlanned: "添加计划停机",
      save: "保存", saved: "已保存。", remove: "删除", loaded: (l) => `已载入 ${l} 的班次日历。`,
      fresh: (l) => `${l} 还没有班次日历:新建。`,
      reasons: "停机原因树", code: "代码", parent: "上级", nameEn: "英文名称", nameZh: "中文名称", loss: "损失类别",
      addReason: "添加原因", refused: "被拒绝", badBreak: (b) => `休息 "${b}" 不是 HH:MM-HH:MM 格式`,
      badCode: (l) => `状态代码行 "${l}" 不是 代码 = 状态 格式`,
      lossNames: { breakdowns: "设备故障", setup_adjustments: "换型与调整", minor_stops: "小停机",
        reduced_speed: "速度降低", process_defects: "过程缺陷", reduced_yield: "开机损失" },
      stateNames: { running: "运行", idle: "空闲", down_planned: "计划停机", down_unplanned: "非计划停机", setup: "换型" },
      edit: "编辑", editing: (n) => `编辑设备 ${n}`, update: "保存修改", cancel: "取消", updated: (n) => `已保存设备 ${n}。`,
      confirmRemove: "确认删除", removed: (n) => `已删除设备 ${n}。`, actions: "操作",
      retire: "停用", confirmRetire: "确认停用", retired: (n) => `已停用设备 ${n}:保留其停机记录和历史。`,
    },
  };
  const T = TEXT[LANG] || TEXT.en;
  const BASE = "/api/v1/apps/oee";

  class FormProblem extends Error {}

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

  const field = (label, input) => el("label", null, label, input);
  const input = (name, attrs) => el("input", { name, ...(attrs || {}) });
  const select = (name, values, names) => el("select", { name }, values.map((v) => el("option", { value: v }, names ? names[v] : v)));
  const opt = (v) => (v.trim() === "" ? null : v.trim());

  async function submitting(form, box, work) {
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      problem(box, err);
    } finally {
      button.disabled = false;
    }
  }

  /* The add form; edit(m) fills it with a machine and turns it into that machine's edit form. */
  function machineForm(list, heading) {
    const box = el("div", { class: "form-feedback" });
    const f = {
      name: input("name"), line: input("line"), mode: select("mode", Object.keys(T.modes), T.modes), tag: input("tag"),
      codes: el("textarea", { name: "codes", rows: 4, placeholder: "1 = running\n2 = idle\n3 = down_unplanned" }),
      threshold: input("threshold", { type: "number", step: "any" }),
      stopped: select("stopped_state", STATES.slice(1), T.stateNames), period: input("sample_period_s", { type: "number", step: "any", value: 1 }),
      good: input("good_tag"), scrap: input("scrap_tag"), total: input("total_tag"),
      cycle: input("ideal_cycle_s", { type: "number", step: "any" }), micro: input("micro_stop_s", { type: "number", step: "any", value: 120 }),
    };
    f.stopped.value = "down_unplanned";
    const codesBox = field(T.codes, f.codes), thresholdBox = field(T.threshold, f.threshold), stoppedBox = field(T.stopped, f.stopped);
    const shape = () => {
      codesBox.hidden = f.mode.value !== "state_tag";
      thresholdBox.hidden = f.mode.value !== "speed";
      stoppedBox.hidden = f.mode.value === "state_tag";
    };
    f.mode.addEventListener("change", shape);
    shape();
    const form = el("form", { class: "form", id: "oee-machine", novalidate: true },
      el("div", { class: "fields" }, field(T.name, f.name), field(T.line, f.line), field(T.mode, f.mode), field(T.tag, f.tag)),
      el("div", { class: "fields" }, codesBox, thresholdBox, stoppedBox, field(T.period, f.period)),
      el("div", { class: "fields" }, field(T.good, f.good), field(T.scrap, f.scrap), field(T.total, f.total)),
      el("div", { class: "fields" }, field(T.cycle, f.cycle), field(T.micro, f.micro)),
      box, el("button", { class: "btn btn-primary", type: "submit" }, T.add),
      el("button", { class: "btn", type: "button", "data-cancel": "edit", hidden: true }, T.cancel));
    const submit = form.querySelector("button[type=submit]"), cancel = form.querySelector("button[data-cancel]");
    let editing = null;
    const adding = () => {
      editing = null;
      form.reset();
      f.stopped.value = "down_unplanned";
      shape();
      heading.textContent = T.machine;
      submit.textContent = T.add;
      cancel.hidden = true;
    };
    cancel.addEventListener("click", () => { adding(); box.replaceChildren(); });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submitting(form, box, async () => {
        const mapping = { mode: f.mode.value, tag: f.tag.value.trim(), sample_period_s: Number(f.period.value || 1) };
        if (f.mode.value === "state_tag") {
          mapping.codes = {};
          for (const line of f.codes.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
            const m = line.match(/^(-?\d+)\s*[=:]\s*(\w+)$/);
            if (!m) throw new FormProblem(T.badCode(line));
            mapping.codes[m[1]] = m[2];
          }
        } else {
          mapping.stopped_state = f.stopped.value;
        }
        if (f.mode.value === "speed") mapping.threshold = f.threshold.value === "" ? null : Number(f.threshold.value);
        const body = {
          name: f.name.value.trim(), line: f.line.value.trim(), mapping,
          good_tag: opt(f.good.value), scrap_tag: opt(f.scrap.value), total_tag: opt(f.total.value),
          ideal_cycle_s: f.cycle.value === "" ? null : Number(f.cycle.value),
          micro_stop_s: f.micro.value === "" ? 120 : Number(f.micro.value),
        };
        if (editing) {
          const saved = await api("PUT", `${BASE}/machines/${encodeURIComponent(editing)}`, body);
          adding();
          ok(box, T.updated(saved.name));
        } else {
          const made = await api("POST", `${BASE}/machines`, body);
          ok(box, T.added(made.name));
        }
        await list();
      });
    });
    const edit = (m) => {
      const mp = m.mapping || {};
      editing = m.id;
      f.name.value = m.name; f.line.value = m.line; f.mode.value = mp.mode; f.tag.value = mp.tag || "";
      f.codes.value = Object.entries(mp.codes || {}).map(([c, st]) => `${c} = ${st}`).join("\n");
      f.threshold.value = mp.threshold ?? ""; f.stopped.value = mp.stopped_state || "down_unplanned";
      f.period.value = mp.sample_period_s ?? 1;
      f.good.value = m.good_tag || ""; f.scrap.value = m.scrap_tag || ""; f.total.value = m.total_tag || "";
      f.cycle.value = m.ideal_cycle_s; f.micro.value = m.micro_stop_s;
      shape();
      heading.textContent = T.editing(m.name);
      submit.textContent = T.update;
      cancel.hidden = false;
      box.replaceChildren();
      form.scrollIntoView({ block: "nearest" });
    };
    return { node: form, edit };
  }

  function rowsEditor(cls, columns, addLabel) {
    const body = el("tbody");
    const add = (values) => {
      const cells = columns.map((c) => {
        const n = c.options ? select(c.name, c.options, c.names) : input(c.name, { type: c.type || "text", placeholder: c.placeholder || "" });
        if (values && values[c.name] !== undefined && values[c.name] !== null) n.value = values[c.name];
        return el("td", null, n);
      });
      const rm = el("button", { class: "btn btn-small btn-danger", type: "button" }, T.remove);
      const tr = el("tr", { class: cls }, cells, el("td", null, rm));
      rm.addEventListener("click", () => tr.remove());
      body.append(tr);
    };
    const table = el("table", { class: "table" },
      el("thead", null, el("tr", null, columns.map((c) => el("th", null, c.label)), el("th", null, ""))), body);
    const button = el("button", { class: "btn btn-small", type: "button", "data-add": cls }, addLabel);
    button.addEventListener("click", () => add());
    const values = () => [...body.querySelectorAll("tr")].map((tr) =>
      Object.fromEntries(columns.map((c) => [c.name, tr.querySelector(`[name=${c.name}]`).value.trim()])));
    return { node: el("div", null, table, button), add, values, clear: () => body.replaceChildren() };
  }

  function calendarForm() {
    const box = el("div", { class: "form-feedback" });
    const line = input("line"), tz = input("tz", { value: "UTC" });
    const shifts = rowsEditor("oee-shift", [
      { name: "name", label: T.name }, { name: "start", label: T.start, type: "time" },
      { name: "end", label: T.end, type: "time" }, { name: "breaks", label: T.breaks, placeholder: "12:00-13:00 lunch" },
      { name: "weekdays", label: "", type: "hidden" },
    ], T.addShift);
    const planned = rowsEditor("oee-planned", [
      { name: "start", label: T.start, type: "datetime-local" }, { name: "end", label: T.end, type: "datetime-local" },
      { name: "reason", label: T.reason, placeholder: "maintenance" }, { name: "machines", label: T.forMachines },
    ], T.addPlanned);
    const load = el("button", { class: "btn", type: "button", id: "oee-cal-load" }, T.load);
    const local = (iso) => { const d = new Date(iso); return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16); };
    load.addEventListener("click", async () => {
      shifts.clear();
      planned.clear();
      try {
        const spec = await api("GET", `${BASE}/calendars/${encodeURIComponent(line.value.trim())}`);
        tz.value = spec.tz || "UTC";
        for (const s of spec.shifts || []) {
          shifts.add({ ...s, weekdays: (s.weekdays || []).join(","), breaks: (s.breaks || []).map((b) => `${b.start}-${b.end}${b.reason ? " " + b.reason : ""}`).join(", ") });
        }
        for (const p of spec.planned || []) planned.add({ ...p, start: local(p.start), end: local(p.end), machines: (p.machines || []).join(", ") });
        ok(box, T.loaded(line.value.trim()));
      } catch (err) {
        if (err instanceof G.ApiError && err.status === 404) ok(box, T.fresh(line.value.trim()));
        else problem(box, err);
      }
    });
    const form = el("form", { class: "form", id: "oee-calendar", novalidate: true },
      el("div", { class: "fields" }, field(T.line, line), field(T.tz, tz)), el("p", null, load),
      el("h4", null, T.shifts), shifts.node, el("h4", null, T.planned), planned.node,
      box, el("button", { class: "btn btn-primary", type: "submit" }, T.save));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submitting(form, box, async () => {
        const spec = {
          tz: tz.value.trim() || "UTC",
          shifts: shifts.values().map((s) => ({
            name: s.name, start: s.start, end: s.end,
            ...(s.weekdays ? { weekdays: s.weekdays.split(",").map(Number) } : {}),
            breaks: s.breaks.split(",").map((b) => b.trim()).filter(Boolean).map((b) => {
              const m = b.match(/^(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*(.*)$/);
              if (!m) throw new FormProblem(T.badBreak(b));
              return { start: m[1], end: m[2], reason: m[3] || "break" };
            }),
          })),
          planned: planned.values().map((p) => ({
            start: p.start ? new Date(p.start).toISOString() : "", end: p.end ? new Date(p.end).toISOString() : "",
            reason: p.reason || "maintenance", machines: p.machines.split(",").map((m) => m.trim()).filter(Boolean),
          })),
        };
        await api("PUT", `${BASE}/calendars/${encodeURIComponent(line.value.trim() || "*")}`, spec);
        ok(box, T.saved);
      });
    });
    return form;
  }

  function reasonsForm() {
    const box = el("div", { class: "form-feedback" });
    const rows = rowsEditor("oee-reason-row", [
      { name: "code", label: T.code }, { name: "parent", label: T.parent },
      { name: "name_en", label: T.nameEn }, { name: "name_zh", label: T.nameZh },
      { name: "loss", label: T.loss, options: LOSSES, names: T.lossNames },
    ], T.addReason);
    const form = el("form", { class: "form", id: "oee-reasons", novalidate: true }, rows.node, box,
      el("button", { class: "btn btn-primary", type: "submit" }, T.save));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submitting(form, box, async () => {
        const nodes = rows.values().map((r) => ({ ...r, parent: r.parent || null }));
        const saved = await api("PUT", `${BASE}/reasons`, nodes);
        rows.clear();
        saved.forEach((r) => rows.add(r));
        ok(box, T.saved);
      });
    });
    return {
      node: form,
      async load() {
        rows.clear();
        G.items(await api("GET", `${BASE}/reasons`)).forEach((r) => rows.add(r));
      },
    };
  }

  G.pages["app:oee/setup"] = async function () {
    const root = document.getElementById("gy-app-root");
    const table = el("div", { id: "oee-machines" });
    const listBox = el("div", { class: "form-feedback", id: "oee-machines-feedback" });
    const heading = el("h4", { id: "oee-machine-heading" }, T.machine);
    const machine = machineForm(list, heading);
    /* Remove asks once more on the same button; a refusal (a machine with stops) shows under the list. */
    /* Retire (a machine with stops, whose removal is refused, keeps its history) asks once more too. */
    const armed = (m, attr, label, confirm, method, path, done) => {
      const b = el("button", { class: "btn btn-small btn-danger", type: "button", [attr]: m.name }, label);
      b.addEventListener("click", async () => {
        if (!b.dataset.armed) {
          b.dataset.armed = "1";
          b.textContent = confirm;
          return;
        }
        b.disabled = true;
        try {
          await api(method, `${BASE}/machines/${encodeURIComponent(m.id)}${path}`);
          ok(listBox, done(m.name));
          await list();
        } catch (err) {
          problem(listBox, err);
          b.disabled = false;
        }
      });
      return b;
    };
    const removeButton = (m) => armed(m, "data-remove", T.remove, T.confirmRemove, "DELETE", "", T.removed);
    const retireButton = (m) => armed(m, "data-retire", T.retire, T.confirmRetire, "POST", "/retire", T.retired);
    const editButton = (m) => {
      const b = el("button", { class: "btn btn-small", type: "button", "data-edit": m.name }, T.edit);
      b.addEventListener("click", () => machine.edit(m));
      return b;
    };
    async function list() {
      const ms = G.items(await api("GET", `${BASE}/machines`));
      table.replaceChildren(ms.length ? el("table", { class: "table" },
        el("thead", null, el("tr", null, [T.name, T.line, T.mode, T.tag, T.cycle, T.micro, T.actions].map((h) => el("th", null, h)))),
        el("tbody", null, ms.map((m) => el("tr", { "data-machine": m.name },
          el("td", null, m.name), el("td", null, m.line), el("td", null, T.modes[m.mapping.mode] || m.mapping.mode),
          el("td", null, m.mapping.tag), el("td", null, G.formatNumber(m.ideal_cycle_s)), el("td", null, G.formatNumber(m.micro_stop_s)),
          el("td", null, editButton(m), " ", removeButton(m), " ", retireButton(m))))))
        : el("p", { class: "muted" }, T.none));
    }
    const reasons = reasonsForm();
    root.replaceChildren(
      el("section", { class: "card" }, el("h3", null, T.machines), table, listBox, heading, machine.node),
      el("section", { class: "card" }, el("h3", null, T.calendar), calendarForm()),
      el("section", { class: "card" }, el("h3", null, T.reasons), reasons.node),
    );
    await Promise.all([list(), reasons.load()]);
  };
})();
