// Keys page: create (secret shown once, copy button), edit limits and models, revoke.
"use strict";
(function () {
  const C = window.Console;

  function fields(form, editing) {
    const data = new FormData(form);
    const out = {};
    for (const name of ["name", "owner"]) out[name] = String(data.get(name) || "");
    for (const name of ["rpm", "tpm", "max_concurrent"]) {
      const v = String(data.get(name) || "").trim();
      out[name] = v === "" ? null : Number(v);
    }
    const days = String(data.get("expires_in_days") || "").trim();
    if (days !== "") out.expires_in_s = Number(days) * 86400;
    const models = data.getAll("allowed_models").map(String);
    out.allowed_models = models.length ? models : null;
    if (!editing) out.admin = data.get("admin") === "on";
    return out;
  }

  const createForm = document.getElementById("create-key");
  const secretDialog = document.getElementById("secret-dialog");
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    C.clearError();
    const created = await C.api("POST", "/console/api/keys", fields(createForm, false));
    document.getElementById("secret").textContent = created.key;
    secretDialog.addEventListener("close", () => window.location.reload(), { once: true });
    secretDialog.showModal();
  });
  document.getElementById("copy-secret").addEventListener("click", async () => {
    const text = document.getElementById("secret").textContent;
    const status = document.getElementById("copy-status");
    try {
      // A browser that asks for permission may never answer: fall back after a moment.
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 1500));
      await Promise.race([navigator.clipboard.writeText(text), timeout]);
      status.textContent = "Copied.";
    }
    catch (_) {
      const range = document.createRange();
      range.selectNodeContents(document.getElementById("secret"));
      const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
      status.textContent = "Selected: press Ctrl+C to copy.";
    }
  });

  const editDialog = document.getElementById("edit-dialog");
  const editForm = document.getElementById("edit-key");
  let editing = null;
  document.getElementById("edit-cancel").addEventListener("click", () => editDialog.close());
  editForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    C.clearError();
    await C.api("PATCH", `/console/api/keys/${editing}`, fields(editForm, true));
    editDialog.close();
    window.location.reload();
  });

  document.getElementById("keys-table").addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const row = button.closest("tr");
    const key = JSON.parse(row.dataset.key);
    if (button.classList.contains("revoke")) {
      if (!window.confirm(`Revoke ${key.prefix}? Clients using it get 401 within seconds.`)) return;
      await C.api("POST", `/console/api/keys/${key.id}/revoke`);
      window.location.reload();
    } else if (button.classList.contains("edit")) {
      editing = key.id;
      for (const name of ["name", "owner", "rpm", "tpm", "max_concurrent"]) editForm.elements[name].value = key[name] ?? "";
      editForm.elements.expires_in_days.value = "";
      for (const box of editForm.querySelectorAll('input[name="allowed_models"]')) {
        box.checked = Array.isArray(key.allowed_models) && key.allowed_models.includes(box.value);
      }
      editDialog.showModal();
    }
  });
})();
