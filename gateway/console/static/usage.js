// Usage page: requests, tokens, errors and rate-limit refusals over time (uPlot), totals, CSV.
"use strict";
(function () {
  const C = window.Console;
  const form = document.getElementById("usage-filter");
  const charts = {};
  const specs = {
    requests: [["requests", "Requests", "#1f5fbf"]],
    tokens: [["prompt_tokens", "Prompt tokens", "#1f5fbf"], ["completion_tokens", "Completion tokens", "#b3541e"]],
    errors: [["errors", "Errors", "#b3261e"], ["rate_limited", "Rate-limited", "#6b4fbb"]],
  };

  function query() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, String(v));
    return params.toString();
  }

  function draw(name, series) {
    const node = document.getElementById(`chart-${name}`);
    const xs = series.data.map((p) => p.start);
    const data = [xs, ...specs[name].map(([field]) => series.data.map((p) => p[field]))];
    if (charts[name]) { charts[name].setData(data); return; }
    const width = Math.max(280, node.clientWidth || 600);
    charts[name] = new uPlot({
      width, height: 200,
      series: [{}, ...specs[name].map(([, label, stroke]) => ({ label, stroke, width: 2, fill: stroke + "22" }))],
      axes: [{}, { size: 60 }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    }, data, node);
  }

  async function refresh() {
    const q = query();
    document.getElementById("csv").href = `/console/api/usage/export?${q}`;
    const series = await C.api("GET", `/console/api/usage/series?${q}`);
    C.clearError();
    window.usageSeries = series;
    for (const cell of document.querySelectorAll("#usage-totals [data-total]")) {
      const field = cell.dataset.total;
      cell.textContent = C.fmt(series.data.reduce((sum, p) => sum + p[field], 0), 0);
    }
    for (const name of Object.keys(specs)) draw(name, series);
    document.getElementById("chart-requests").dataset.requestsTotal = String(series.data.reduce((s, p) => s + p.requests, 0));
  }

  form.addEventListener("change", refresh);
  document.getElementById("refresh").addEventListener("click", refresh);
  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(charts)) {
      chart.setSize({ width: Math.max(280, document.getElementById(`chart-${name}`).clientWidth), height: 200 });
    }
  });
  refresh();
})();
