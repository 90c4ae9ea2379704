// The mac-lm web page: plain DOM and fetch, no build step. Talks to the server's /v1 API.
/* global document, localStorage, fetch, TextDecoderStream -- a browser script */
const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("mac-lm-token") ?? "";
tokenInput.addEventListener("change", () => localStorage.setItem("mac-lm-token", tokenInput.value));

function writeHeaders(withBody) {
  const h = withBody ? { "content-type": "application/json" } : {};
  if (tokenInput.value) h.authorization = `Bearer ${tokenInput.value}`;
  return h;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: method === "GET" ? {} : writeHeaders(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error?.message ?? `${res.status} ${res.statusText}`);
  return data;
}

function status(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function refreshDocuments() {
  const { documents } = await api("GET", "/v1/documents");
  $("doc-count").textContent = `(${documents.length})`;
  const list = $("doc-list");
  list.replaceChildren(
    ...documents.map((d) => {
      const li = document.createElement("li");
      li.dataset.id = d.id;
      const label = document.createElement("div");
      label.innerHTML = "<strong></strong><div class='meta'></div>";
      label.querySelector("strong").textContent = d.title ?? d.id;
      label.querySelector(".meta").textContent = `${d.id} · ${d.chars} characters`;
      const del = document.createElement("button");
      del.className = "delete";
      del.textContent = "Delete";
      del.addEventListener("click", async () => {
        del.disabled = true;
        try {
          await api("DELETE", `/v1/documents/${encodeURIComponent(d.id)}`);
          status($("doc-status"), `Forgot "${d.id}".`);
          await refreshDocuments();
        } catch (e) {
          status($("doc-status"), e.message, true);
          del.disabled = false;
        }
      });
      li.append(label, del);
      return li;
    }),
  );
}

async function addDocuments(documents) {
  const button = $("add-doc");
  button.disabled = true;
  status($("doc-status"), `Adding ${documents.length} document(s)…`);
  try {
    const r = await api("POST", "/v1/documents", { documents });
    status($("doc-status"), `Stored ${[...r.added, ...r.replaced].join(", ")} (durable).`);
    await refreshDocuments();
    return true;
  } catch (e) {
    status($("doc-status"), e.message, true);
    return false;
  } finally {
    button.disabled = false;
  }
}

$("add-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const doc = { id: $("doc-id").value.trim(), text: $("doc-text").value };
  const title = $("doc-title").value.trim();
  if (title) doc.title = title;
  if (await addDocuments([doc])) for (const f of ["doc-id", "doc-title", "doc-text"]) $(f).value = "";
});

$("upload").addEventListener("change", async (ev) => {
  const files = [...ev.target.files];
  const documents = await Promise.all(
    files.map(async (f) => ({
      id: f.name.replace(/\.(txt|md)$/i, "").replace(/[^\p{L}\p{N}._:@/+-]+/gu, "-"),
      title: f.name,
      text: await f.text(),
    })),
  );
  if (documents.length > 0) await addDocuments(documents);
  ev.target.value = "";
});

/** POST /v1/ask with stream: true; calls onToken per piece; resolves with the final result. */
async function askStreaming(body, onToken) {
  const res = await fetch("/v1/ask", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new Error(data.error?.message ?? `${res.status} ${res.statusText}`);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the answer stream ended early");
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
      if (event === "token") onToken(data.text);
      else if (event === "done") return data;
      else if (event === "error") throw new Error(data.message);
    }
  }
}

function showSources(sources) {
  $("sources").replaceChildren(
    ...sources.map((s) => {
      const li = document.createElement("li");
      li.className = "source";
      li.dataset.id = s.id;
      li.innerHTML =
        "<div><strong></strong> <span class='small'></span></div><div class='bar'><span></span></div><div class='snippet'></div>";
      li.querySelector("strong").textContent = s.title ?? s.id;
      li.querySelector(".small").textContent = `${(100 * s.weight).toFixed(1)} %`;
      li.querySelector(".bar > span").style.width = `${Math.max(1, 100 * s.weight).toFixed(1)}%`;
      li.querySelector(".snippet").textContent = s.snippet;
      return li;
    }),
  );
}

async function runAsk(question, memory) {
  const out = $(memory ? "answer-memory" : "answer-plain");
  const timing = $(memory ? "timing-memory" : "timing-plain");
  out.textContent = "";
  status(timing, "…");
  try {
    const r = await askStreaming(
      { question, memory, hierarchical: $("hierarchical").checked || undefined },
      (piece) => (out.textContent += piece),
    );
    out.textContent = r.answer || "(empty answer)";
    status(
      timing,
      `${(r.timings.totalMs / 1000).toFixed(2)} s${memory ? ` · memory of ${r.memory.documents} documents` : ""}`,
    );
    if (memory) showSources(r.sources);
  } catch (e) {
    status(timing, e.message, true);
  }
}

$("ask-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const button = $("ask");
  button.disabled = true;
  $("sources").replaceChildren();
  document.body.dataset.answered = "no";
  await Promise.all([runAsk(question, true), runAsk(question, false)]);
  document.body.dataset.answered = "yes";
  button.disabled = false;
});

refreshDocuments().catch((e) => status($("doc-status"), e.message, true));
