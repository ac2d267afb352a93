// Live page: the gateway's own figures, polled every 2 s.
"use strict";
(function () {
  const C = window.Console;
  const digits = { requests_per_s: 2, errors_per_s: 2 };
  async function refresh() {
    let stats;
    try { stats = await C.api("GET", "/console/api/live"); } catch (_) { return; }
    C.clearError();
    for (const node of document.querySelectorAll("[data-stat]")) {
      node.textContent = C.fmt(stats[node.dataset.stat], digits[node.dataset.stat] ?? 1);
    }
    const body = document.querySelector("#endpoints tbody");
    body.replaceChildren(...(stats.endpoints || []).map((e) => {
      const row = document.createElement("tr");
      for (const [text, cls] of [[e.url, ""], [e.healthy ? "healthy" : "unhealthy", e.healthy ? "state state-active" : "state state-revoked"], [String(e.outstanding), ""]]) {
        const cell = document.createElement("td");
        const span = document.createElement("span");
        span.textContent = text; if (cls) span.className = cls;
        cell.append(span); row.append(cell);
      }
      return row;
    }));
  }
  refresh();
  setInterval(refresh, 2000);
})();
