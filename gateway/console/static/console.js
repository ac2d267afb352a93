// Shared helpers: same-origin JSON calls that carry the CSRF token, and API errors shown as the API's message.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const alertBox = document.getElementById("alert");

  function showError(message) {
    if (!alertBox) return;
    alertBox.textContent = message;
    alertBox.hidden = false;
  }
  function clearError() { if (alertBox) { alertBox.hidden = true; alertBox.textContent = ""; } }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) { /* not JSON */ }
    return `HTTP ${response.status}`;
  }

  async function call(method, path, body) {
    const headers = { "X-CSRF-Token": csrf };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) { window.location.assign("/console/login"); throw new Error("signed out"); }
    if (!response.ok) { const message = await errorMessage(response); showError(message); throw new Error(message); }
    return response;
  }
  async function api(method, path, body) { return (await call(method, path, body)).json(); }

  function pageData() {
    const node = document.getElementById("page-data");
    return node ? JSON.parse(node.textContent) : {};
  }
  function fmt(value, digits) {
    if (value === null || value === undefined) return "-";
    return typeof value === "number" ? value.toLocaleString("en-US", { maximumFractionDigits: digits ?? 1 }) : String(value);
  }

  window.Console = { api, call, csrf, showError, clearError, errorMessage, pageData, fmt };
})();
