// Models page: activate and deactivate.
"use strict";
(function () {
  const C = window.Console;
  document.getElementById("models-table").addEventListener("click", async (event) => {
    const button = event.target.closest("button.toggle");
    if (!button) return;
    const id = button.closest("tr").dataset.modelId;
    button.disabled = true;
    try {
      await C.api("POST", `/console/api/models/${encodeURIComponent(id)}/${button.dataset.action}`);
      window.location.reload();
    } finally { button.disabled = false; }
  });
})();
