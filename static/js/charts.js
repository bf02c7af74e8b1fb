// Draws the deployment page's charts with uPlot from the JSON its
// data-series-url returns: {"title": ..., "unit": ..., "series": {"label": [[t, v], ...]}}.
// A file, not inline code: the CSP allows no inline scripts.
(function () {
  const palette = ["#1971c2", "#e8590c", "#2f9e44", "#9c36b5", "#c2255c", "#0c8599"];

  function merge(series) {
    const labels = Object.keys(series);
    const times = [...new Set(labels.flatMap((l) => series[l].map((p) => p[0])))].sort((a, b) => a - b);
    const columns = labels.map((label) => {
      const byTime = new Map(series[label]);
      return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
    });
    return { labels, data: [times, ...columns] };
  }

  // The 24-hour clock, as everywhere else in the dashboard (uPlot's default is 12-hour).
  const clock = uPlot.fmtDate("{HH}:{mm}");
  const dayAndClock = uPlot.fmtDate("{MM}-{DD} {HH}:{mm}");
  const stamp = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}");

  function timeTicks(u, splits) {
    const days = (u.scales.x.max - u.scales.x.min) > 86400;
    return splits.map((t) => (days ? dayAndClock : clock)(new Date(t * 1000)));
  }

  async function draw(element) {
    const response = await fetch(element.dataset.seriesUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const chart = await response.json();
    const { labels, data } = merge(chart.series);
    if (!labels.length) {
      element.querySelector(".chart-empty").hidden = false;
      return;
    }
    const width = Math.max(280, element.clientWidth);
    new uPlot(
      {
        title: chart.title,
        width: width,
        height: 180,
        series: [
          { value: (u, t) => (t == null ? "—" : stamp(new Date(t * 1000))) },
          ...labels.map((label, i) => ({ label: label, stroke: palette[i % palette.length], width: 1.5 })),
        ],
        axes: [{ values: timeTicks }, { label: chart.unit }],
        // A lone point would otherwise stretch the time axis over years.
        scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 1800, max + 1800] : [min, max]) } },
      },
      data,
      element.querySelector(".chart-canvas")
    );
    // A canvas has no text: say what it shows, with the same clock.
    const times = data[0];
    element.setAttribute("role", "img");
    element.setAttribute(
      "aria-label",
      `${chart.title}: ${labels.join(", ")}, ${stamp(new Date(times[0] * 1000))} to ${stamp(new Date(times[times.length - 1] * 1000))}`
    );
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-series-url]").forEach(draw);
  });
})();
