// Draws the deployment page's charts with uPlot from the JSON its
// data-series-url returns: {"title", "unit", "series": {"label": [[t, v], ...]},
// "start", "end", "bucket_seconds"}, and reads it again every minute (the
// figures are one point a minute), so a page left open stays current.
// A file, not inline code: the CSP allows no inline scripts.
(function () {
  const palette = ["#1864ab", "#c2410c", "#2b8a3e", "#862e9c", "#a61e4d", "#0b7285"];
  const REFRESH_MS = 60_000;

  // Points on one time axis; a missing bucket becomes a null, so the line
  // breaks there instead of drawing a slope across the gap.
  function merge(series, bucket) {
    const labels = Object.keys(series);
    const known = [...new Set(labels.flatMap((l) => series[l].map((p) => p[0])))].sort((a, b) => a - b);
    const times = [];
    known.forEach((t, i) => {
      if (i && t - known[i - 1] > bucket * 1.5) times.push(known[i - 1] + bucket);
      times.push(t);
    });
    const columns = labels.map((label) => {
      const byTime = new Map(series[label]);
      return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
    });
    return { labels, data: [times, ...columns] };
  }

  // The 24-hour clock, as everywhere else in the dashboard (uPlot's default is 12-hour).
  const clock = uPlot.fmtDate("{HH}:{mm}");
  const dayAndClock = uPlot.fmtDate("{MM}-{DD} {HH}:{mm}");
  const stamp = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}");

  function timeTicks(u, splits) {
    const days = u.scales.x.max - u.scales.x.min > 86400;
    return splits.map((t) => (days ? dayAndClock : clock)(new Date(t * 1000)));
  }

  function describe(element, chart, labels, times) {
    // A canvas has no text: say what it shows, with the same clock.
    const when = (t) => stamp(new Date(t * 1000));
    element.setAttribute("role", "img");
    element.setAttribute(
      "aria-label",
      `${chart.title}: ${labels.join(", ")}, read from ${when(times[0])} to ${when(times[times.length - 1])} ` +
        `(window ${when(chart.start)} to ${when(chart.end)})`
    );
  }

  async function load(element) {
    const response = await fetch(element.dataset.seriesUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const chart = await response.json();
    const { labels, data } = merge(chart.series, chart.bucket_seconds || 60);
    const empty = element.querySelector(".chart-empty");
    empty.hidden = labels.length > 0;
    if (!labels.length) return;
    const window = [chart.start, chart.end];
    const known = element._chart;
    if (known && known.labels.join("\n") === labels.join("\n")) {
      known.plot.batch(() => {
        known.window = window;
        known.plot.setData(data, false);
        known.plot.setScale("x", { min: window[0], max: window[1] });
      });
      describe(element, chart, labels, data[0]);
      return;
    }
    if (known) known.plot.destroy();
    const few = data[0].length < 3;
    const state = { labels, window };
    const plot = new uPlot(
      {
        title: chart.title,
        width: Math.max(280, element.clientWidth),
        height: 180,
        series: [
          { value: (u, t) => (t == null ? "—" : stamp(new Date(t * 1000))) },
          ...labels.map((label, i) => ({
            label: label,
            stroke: palette[i % palette.length],
            width: 1.5,
            // A lone reading is a dot, not an invisible line.
            points: { show: few, size: 6 },
          })),
        ],
        axes: [{ values: timeTicks }, { label: chart.unit }],
        // The chosen window, whatever the points cover.
        scales: { x: { time: true, range: () => state.window } },
      },
      data,
      element.querySelector(".chart-canvas")
    );
    element._chart = Object.assign(state, { plot });
    describe(element, chart, labels, data[0]);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const charts = document.querySelectorAll("[data-series-url]");
    charts.forEach(load);
    setInterval(() => {
      if (!document.hidden) charts.forEach(load);
    }, REFRESH_MS);
  });
})();
