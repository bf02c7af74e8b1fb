// Draws the load-test pages' x/y charts with uPlot from the JSON their
// data-curve-url returns: {"title", "x", "y", "series": {"label": [[x, y], ...]}, "limit"?}.
// x is not time here (throughput, or concurrency), so points are joined in
// x order across the gaps another series leaves. A file, not inline code:
// the CSP allows no inline scripts.
(function () {
  const palette = ["#1971c2", "#e8590c", "#2f9e44", "#9c36b5", "#c2255c", "#0c8599", "#5f3dc4", "#e67700"];

  function merge(series) {
    const labels = Object.keys(series).filter((label) => series[label].length);
    const xs = [...new Set(labels.flatMap((l) => series[l].map((p) => p[0])))].sort((a, b) => a - b);
    const columns = labels.map((label) => {
      const byX = new Map(series[label]);
      return xs.map((x) => (byX.has(x) ? byX.get(x) : null));
    });
    return { labels, data: [xs, ...columns] };
  }

  function limitLine(limit) {
    // The latency budget as a dashed line across the plot.
    return {
      hooks: {
        draw: [
          (u) => {
            const y = u.valToPos(limit, "y", true);
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = "#c92a2a";
            ctx.setLineDash([6, 4]);
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.restore();
          },
        ],
      },
    };
  }

  async function draw(element) {
    const response = await fetch(element.dataset.curveUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const chart = await response.json();
    const { labels, data } = merge(chart.series);
    if (!labels.length) {
      element.querySelector(".chart-empty").hidden = false;
      return;
    }
    const width = Math.max(280, element.clientWidth);
    const plugins = chart.limit ? [limitLine(chart.limit)] : [];
    new uPlot(
      {
        title: chart.title,
        width: width,
        height: 220,
        plugins: plugins,
        series: [
          { label: chart.x, value: (u, v) => (v == null ? "—" : v.toFixed(1)) },
          ...labels.map((label, i) => ({
            label: label,
            stroke: palette[i % palette.length],
            width: 1.5,
            spanGaps: true,
            points: { show: true, size: 6 },
            value: (u, v) => (v == null ? "—" : v.toFixed(2)),
          })),
        ],
        axes: [{ label: chart.x }, { label: chart.y }],
        scales: {
          x: { time: false, range: (u, min, max) => (min === max ? [0, max * 2 || 1] : [0, max * 1.05]) },
          y: {
            range: (u, min, max) => [0, Math.max(max, chart.limit || 0) * 1.1 || 1],
          },
        },
      },
      data,
      element.querySelector(".chart-canvas")
    );
    element.setAttribute("role", "img");
    element.setAttribute("aria-label", `${chart.title}: ${labels.join(", ")}`);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-curve-url]").forEach(draw);
  });
})();
