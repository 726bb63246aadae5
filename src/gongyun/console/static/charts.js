/* Gongyun console: charts on the vendored uPlot (static/vendor): time-series trends with live append,
 * and small bar charts of one number per run. */
(function () {
  "use strict";

  const G = window.Gongyun;
  const { t, el, LANG } = G;
  /* Whole-number axis steps for counts. */
  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7];
  const COLORS = ["#0f5fa8", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#1098ad", "#5c940d", "#e67700"];

  const timeOnly = new Intl.DateTimeFormat(LANG, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  const dateTime = new Intl.DateTimeFormat(LANG, { dateStyle: "short", timeStyle: "medium" });

  /* Draw point markers only when a series has too few points in view to show as a line. */
  function sparse(u, si, i0, i1) {
    const col = u.data[si];
    let n = 0;
    for (let i = i0; i <= i1 && n < 3; i++) if (col[i] !== null && col[i] !== undefined) n++;
    return n < 3;
  }

  function fmtValue(v) {
    return v === null || v === undefined ? "—" : G.formatNumber(v);
  }

  /*
   * A trend: one time axis (seconds since the epoch) and several series of numbers.
   * series: [{label, unit, dash}]; window_s: how much history live appends keep.
   */
  class Trend {
    constructor(container, series, options) {
      const opts = options || {};
      this.container = container;
      this.windowS = opts.window_s || 900;
      this.height = opts.height || 260;
      this.series = series;
      this.xs = [];
      this.ys = series.map(() => []);
      this.count = 0;
      this.box = el("div", { class: "trend-plot" });
      this.empty = el("p", { class: "trend-empty muted" }, t("chart.no_data"));
      container.replaceChildren(this.box, this.empty);
      const uSeries = [
        { label: t("chart.time"), value: (u, v) => (v === null ? "—" : dateTime.format(new Date(v * 1000))) },
        ...series.map((s, i) => ({
          label: s.unit ? s.label + " (" + s.unit + ")" : s.label,
          stroke: s.color || COLORS[i % COLORS.length],
          width: s.width || 1.6,
          dash: s.dash,
          spanGaps: true,
          points: { show: sparse, size: 5 },
          value: (u, v) => fmtValue(v),
        })),
      ];
      this.plot = new window.uPlot(
        {
          width: Math.max(container.clientWidth, 200),
          height: this.height,
          series: uSeries,
          cursor: { drag: { x: true, y: false } },
          scales: { x: { time: true } },
          axes: [
            { values: (u, splits) => splits.map((s) => timeOnly.format(new Date(s * 1000))), stroke: "#5f6b7a", grid: { stroke: "#eef1f4" } },
            { values: (u, splits) => splits.map((s) => G.formatNumber(s, 2)), stroke: "#5f6b7a", grid: { stroke: "#eef1f4" }, size: 60 },
          ],
          legend: { show: true, live: true },
        },
        [this.xs, ...this.ys],
        this.box,
      );
      this.observer = new ResizeObserver(() => this.resize());
      this.observer.observe(container);
      this._mark();
    }

    resize() {
      const width = Math.max(this.container.clientWidth, 200);
      if (Math.abs(width - this.plot.width) > 1) this.plot.setSize({ width, height: this.height });
    }

    /* Replace everything: times (seconds) and one array of values per series (same length, nulls allowed). */
    setData(xs, ys) {
      this.xs = xs.slice();
      this.ys = this.series.map((_, i) => (ys[i] || []).slice());
      this.count = this.xs.length;
      this._redraw();
    }

    /* Add a point of series i at time x (seconds), keeping time order and the window. */
    append(i, x, y) {
      let at = this.xs.length;
      while (at > 0 && this.xs[at - 1] > x) at--;
      if (at > 0 && this.xs[at - 1] === x) {
        this.ys[i][at - 1] = y;
      } else {
        this.xs.splice(at, 0, x);
        this.ys.forEach((col, j) => col.splice(at, 0, j === i ? y : null));
      }
      const cutoff = this.xs[this.xs.length - 1] - this.windowS;
      let drop = 0;
      while (drop < this.xs.length && this.xs[drop] < cutoff) drop++;
      if (drop) {
        this.xs.splice(0, drop);
        this.ys.forEach((col) => col.splice(0, drop));
      }
      this.count++;
      this._redraw();
    }

    last(i) {
      const col = this.ys[i];
      for (let k = col.length - 1; k >= 0; k--) if (col[k] !== null && col[k] !== undefined) return col[k];
      return null;
    }

    _redraw() {
      this.plot.setData([this.xs, ...this.ys]);
      this._mark();
    }

    _mark() {
      const has = this.ys.some((col) => col.some((v) => v !== null && v !== undefined));
      this.empty.hidden = has;
      this.container.dataset.points = String(this.xs.length);
      this.container.dataset.updates = String(this.count);
      this.container.dataset.last = String(this.last(0));
    }

    destroy() {
      this.observer.disconnect();
      this.plot.destroy();
    }
  }

  /*
   * Bars of one count per run, oldest first: labels[i] names run i (shown on the axis and in the
   * legend), values[i] is its count. options: {label, xLabel, ticks (shorter axis labels), height}.
   */
  class Bars {
    constructor(container, labels, values, options) {
      const opts = options || {};
      this.container = container;
      this.height = opts.height || 140;
      const box = el("div", { class: "trend-plot" });
      container.replaceChildren(box);
      const name = (i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : "");
      const tick = (i) => (opts.ticks && Number.isInteger(i) && opts.ticks[i] !== undefined ? opts.ticks[i] : name(i));
      this.plot = new window.uPlot(
        {
          width: Math.max(container.clientWidth, 200),
          height: this.height,
          cursor: { drag: { x: false, y: false }, points: { show: false } },
          scales: {
            x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
            y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
          },
          series: [
            { label: opts.xLabel || "", value: (u, v) => (v === null ? "—" : name(v)) },
            {
              label: opts.label || "",
              stroke: COLORS[0],
              fill: COLORS[0] + "aa",
              width: 1,
              paths: window.uPlot.paths.bars({ size: [0.6, 48] }),
              points: { show: false },
              value: (u, v) => fmtValue(v),
            },
          ],
          axes: [
            { incrs: [1, 2, 5, 10], values: (u, splits) => splits.map(tick), stroke: "#5f6b7a", grid: { show: false } },
            {
              incrs: COUNT_STEPS,
              values: (u, splits) => splits.map((v) => G.formatNumber(v, 0)),
              stroke: "#5f6b7a",
              grid: { stroke: "#eef1f4" },
              size: 50,
            },
          ],
          legend: { show: true, live: true },
        },
        [labels.map((_, i) => i), values.slice()],
        box,
      );
      container.dataset.runs = String(values.length);
      container.dataset.last = String(values.length ? values[values.length - 1] : null);
      this.observer = new ResizeObserver(() => {
        const width = Math.max(this.container.clientWidth, 200);
        if (Math.abs(width - this.plot.width) > 1) this.plot.setSize({ width, height: this.height });
      });
      this.observer.observe(container);
    }

    destroy() {
      this.observer.disconnect();
      this.plot.destroy();
    }
  }

  /* ISO time to uPlot seconds. */
  function seconds(iso) {
    return new Date(iso).getTime() / 1000;
  }

  /* Buckets of one tag's series over [start, end) as [times, averages]. */
  async function buckets(tag, series, start, end, count) {
    const q = new URLSearchParams({ tag, series, start: start.toISOString(), end: end.toISOString(), buckets: String(count) });
    const res = await G.api("GET", "/api/v1/telemetry/downsample?" + q.toString());
    const out = new Map();
    for (const b of res.buckets || []) {
      if (b.count) out.set(seconds(b.start), b.avg);
    }
    return out;
  }

  /*
   * The trend of one tag: raw (and, when asked, cleaned) history in buckets, then live raw points
   * from the telemetry stream. opts: {unit, range_s, clean, onPoint(point), onStream(state)}.
   */
  class TagTrend {
    constructor(container, tag, options) {
      this.tag = tag;
      this.opts = options || {};
      this.rangeS = this.opts.range_s || 900;
      const series = [{ label: t("chart.raw"), unit: this.opts.unit }];
      if (this.opts.clean) series.push({ label: t("chart.clean"), unit: this.opts.unit, dash: [6, 4], width: 2 });
      this.chart = new Trend(container, series, { window_s: this.rangeS, height: this.opts.height });
      this.live = null;
    }

    async load() {
      const end = new Date(Date.now() + 5000);
      const start = new Date(end.getTime() - this.rangeS * 1000);
      const n = Math.min(600, Math.max(60, Math.round(this.rangeS / 2)));
      const wanted = [buckets(this.tag, "raw", start, end, n)];
      if (this.opts.clean) wanted.push(buckets(this.tag, "clean", start, end, n));
      const maps = await Promise.all(wanted);
      const xs = Array.from(new Set(maps.flatMap((m) => Array.from(m.keys())))).sort((a, b) => a - b);
      this.chart.setData(xs, maps.map((m) => xs.map((x) => (m.has(x) ? m.get(x) : null))));
      return this;
    }

    follow() {
      const path = "/api/v1/telemetry/stream?" + new URLSearchParams({ tag: this.tag }).toString();
      let dropped = false;
      const onStream = (s) => {
        // Points stored while the stream was down are not replayed: fetch the history again.
        if (s === "open" && dropped) this.load().catch(() => {});
        if (s === "retrying") dropped = true;
        if (this.opts.onStream) this.opts.onStream(s);
      };
      this.live = G.stream(path, (name, data) => {
        if (name !== "points" || !Array.isArray(data)) return;
        for (const p of data) {
          if (p.tag !== this.tag || typeof p.value !== "number") continue;
          this.chart.append(0, seconds(p.ts), p.value);
          if (this.opts.onPoint) this.opts.onPoint(p);
        }
      }, onStream);
      return this;
    }

    close() {
      if (this.live) this.live.close();
      this.live = null;
      this.chart.destroy();
    }
  }

  G.charts = { Trend, TagTrend, Bars, buckets, seconds, COLORS };
})();
