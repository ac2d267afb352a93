// Playground: streamed chat through the console's same-origin proxy (the session stands in for
// the key), images for vision models, the equivalent curl and openai snippets, and an embeddings
// view comparing sentences by cosine similarity.
"use strict";
(function () {
  const C = window.Console;
  const form = document.getElementById("chat-form");
  const output = document.getElementById("chat-output");
  const meta = document.getElementById("chat-meta");
  const modelSelect = document.getElementById("chat-model");
  const imageFields = document.getElementById("image-fields");
  const preview = document.getElementById("image-preview");
  let imageData = null;
  let controller = null;

  // Tabs (arrow keys move between them).
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  function select(tab) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
  }
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(tab);
      if (e.key === "ArrowRight") select(tabs[(i + 1) % tabs.length]);
      if (e.key === "ArrowLeft") select(tabs[(i + tabs.length - 1) % tabs.length]);
    });
  }

  function syncVision() {
    const option = modelSelect.selectedOptions[0];
    imageFields.hidden = !(option && option.dataset.vision === "true");
  }
  modelSelect.addEventListener("change", syncVision);
  syncVision();

  document.getElementById("image-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (!file) { imageData = null; preview.hidden = true; return; }
    const reader = new FileReader();
    reader.onload = () => { imageData = String(reader.result); preview.src = imageData; preview.hidden = false; };
    reader.readAsDataURL(file);
  });

  function body() {
    const data = new FormData(form);
    const messages = [];
    const system = String(data.get("system") || "").trim();
    if (system) messages.push({ role: "system", content: system });
    const text = String(data.get("message") || "");
    const url = imageFields.hidden ? "" : (imageData || String(data.get("image_url") || "").trim());
    messages.push({ role: "user", content: url ? [{ type: "image_url", image_url: { url } }, { type: "text", text }] : text });
    const out = { model: String(data.get("model") || ""), messages, stream: true, stream_options: { include_usage: true } };
    for (const name of ["temperature", "top_p"]) { const v = String(data.get(name) || "").trim(); if (v !== "") out[name] = Number(v); }
    for (const name of ["top_k", "max_tokens", "seed"]) { const v = String(data.get(name) || "").trim(); if (v !== "") out[name] = parseInt(v, 10); }
    const stop = String(data.get("stop") || "").split(",").map((s) => s.trim()).filter(Boolean);
    if (stop.length) out.stop = stop;
    return out;
  }

  function shorten(value) {
    return JSON.parse(JSON.stringify(value, (k, v) => (typeof v === "string" && v.startsWith("data:") && v.length > 80 ? v.slice(0, 60) + "...<base64 elided>" : v)));
  }
  function snippets(request) {
    const shown = shorten(request);
    const base = `${window.location.origin}/v1`;
    const json = JSON.stringify(shown, null, 2);
    document.getElementById("snippet-curl").textContent =
      `curl ${base}/chat/completions \\\n  -H "Authorization: Bearer $CHUNGUS_API_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${json.replaceAll("'", "'\\''")}'`;
    const { model, messages, ...rest } = shown;
    const kwargs = Object.entries(rest).map(([k, v]) => `    ${k}=${pyValue(v)},`).join("\n");
    document.getElementById("snippet-python").textContent =
      `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}", api_key="sk-chungus-...")  # your key\n` +
      `stream = client.chat.completions.create(\n    model=${pyValue(model)},\n    messages=${pyValue(messages)},\n${kwargs}\n)\n` +
      `for chunk in stream:\n    if chunk.choices:\n        print(chunk.choices[0].delta.content or "", end="", flush=True)\n`;
  }
  function pyValue(v) {  // a Python literal: True/False/None, lists and dicts all the way down
    if (v === true) return "True";
    if (v === false) return "False";
    if (v === null || v === undefined) return "None";
    if (Array.isArray(v)) return `[${v.map(pyValue).join(", ")}]`;
    if (typeof v === "object") return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyValue(x)}`).join(", ")}}`;
    return JSON.stringify(v);
  }

  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        for (const line of frame.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
      }
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    C.clearError();
    const request = body();
    snippets(request);
    output.textContent = ""; meta.textContent = "";
    output.dataset.chunks = "0"; output.dataset.state = "streaming";
    const send = document.getElementById("send"); const stop = document.getElementById("stop-stream");
    send.disabled = true; stop.disabled = false;
    controller = new AbortController();
    const started = performance.now();
    let first = null; let chunks = 0;
    try {
      const response = await fetch("/console/api/chat/completions", {
        method: "POST", credentials: "same-origin", signal: controller.signal,
        headers: { "Content-Type": "application/json", "X-CSRF-Token": C.csrf }, body: JSON.stringify(request),
      });
      if (!response.ok) { C.showError(await C.errorMessage(response)); output.dataset.state = "error"; return; }
      for await (const data of events(response)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) { C.showError(chunk.error.message); output.dataset.state = "error"; return; }
        const delta = chunk.choices && chunk.choices[0] ? chunk.choices[0].delta.content : null;
        if (delta) {
          if (first === null) first = performance.now() - started;
          output.textContent += delta; chunks += 1; output.dataset.chunks = String(chunks);
        }
        if (chunk.usage) meta.textContent = `${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens`;
      }
      output.dataset.state = "done";
      meta.textContent += `${meta.textContent ? " · " : ""}first token ${Math.round(first ?? 0)} ms · ${chunks} chunks · ${Math.round(performance.now() - started)} ms`;
    } catch (err) {
      if (err.name !== "AbortError") C.showError(String(err.message || err));
      output.dataset.state = err.name === "AbortError" ? "stopped" : "error";
    } finally { send.disabled = false; stop.disabled = true; controller = null; }
  });
  document.getElementById("stop-stream").addEventListener("click", () => controller && controller.abort());

  // Embeddings: cosine similarity of every pair.
  const embForm = document.getElementById("emb-form");
  embForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    C.clearError();
    const input = document.getElementById("emb-input").value.split("\n").map((s) => s.trim()).filter(Boolean);
    const model = document.getElementById("emb-model").value;
    const result = await C.api("POST", "/console/api/embeddings", { model, input });
    const vectors = result.data.map((d) => d.embedding);
    const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) / (norm(a) * norm(b));
    const table = document.getElementById("emb-matrix");
    const head = document.createElement("thead"); const hr = document.createElement("tr");
    hr.append(document.createElement("th"));
    input.forEach((_, i) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = `#${i + 1}`; hr.append(th); });
    head.append(hr);
    const tbody = document.createElement("tbody");
    input.forEach((sentence, i) => {
      const row = document.createElement("tr");
      const th = document.createElement("th"); th.scope = "row"; th.textContent = `#${i + 1} ${sentence}`; row.append(th);
      vectors.forEach((_, j) => {
        const td = document.createElement("td"); const value = cos(vectors[i], vectors[j]);
        td.textContent = value.toFixed(3); td.dataset.sim = value.toFixed(4);
        td.className = `sim sim-${Math.max(0, Math.min(4, Math.floor(value * 5)))}`;
        row.append(td);
      });
      tbody.append(row);
    });
    table.replaceChildren(head, tbody);
  });
})();
