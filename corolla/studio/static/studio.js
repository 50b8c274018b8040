// corolla studio's page: a client of the studio's HTTP API (docs/studio.md). This file: the API
// helper (CSRF header, errors, the CLI box), tabs, projects and the Data tab. train.js, review.js
// and ship.js add the other tabs through the shared object S.
"use strict";

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const UPLOAD_PART = 100; // files per request (the studio takes at most 500)

const S = (window.S = {
  project: null, // name of the open project
  run: null, // run shown in Review, Try it and Ship it
  runs: [], // GET …/runs
  data: null, // GET /api/projects/{p}
  classes: [],
  tabs: {}, // name → {open()} registered by each file
  tab: "projects",
});

// --- small helpers ---------------------------------------------------------------------------
S.el = function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child != null));
  return node;
};
const el = S.el;

S.path = (rest = "") => `/api/projects/${enc(S.project)}${rest}`;
S.runPath = (rest = "", run = S.run) => S.path(`/runs/${enc(run)}${rest}`);
S.thumb = (key) => S.path(`/thumbnail?key=${enc(key)}`);
S.percent = (value, digits = 1) => (value == null ? "–" : `${(value * 100).toFixed(digits)}%`);
S.sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
S.count = (n, word, plural = `${word}s`) => `${n} ${n === 1 ? word : plural}`;

// --- the API -----------------------------------------------------------------------------------
// Every call: the CSRF token on anything but GET, the server's own message on failure
// ({"error": …}, or FastAPI's {"detail": …} for a malformed request), and `command` to the CLI box.
S.api = async function api(method, url, body, label) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") options.headers["X-CSRF-Token"] = CSRF;
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error(`the studio did not answer ${method} ${url} (${error.message}); is it still running?`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : {};
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const error = new Error(problem(response, data, text));
    error.status = response.status;
    throw error;
  }
  if (method !== "GET" && data && typeof data.command === "string") S.cli(data.command, label);
  return data;
};

function problem(response, data, text) {
  if (data && typeof data.error === "string") return data.error;
  if (data && Array.isArray(data.detail)) {
    return data.detail.map((item) => `${(item.loc || []).filter((part) => part !== "body").join(".") || "request"}: ${item.msg}`).join("; ");
  }
  if (data && typeof data.detail === "string") return `${data.detail} (HTTP ${response.status})`;
  return `HTTP ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 300)}` : ""}`;
}

S.showError = function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
};
$("error-close").addEventListener("click", () => { $("error").hidden = true; });

// A user's action: what failed is said in words, with the server's reason.
S.act = async function act(what, action) {
  $("error").hidden = true;
  try {
    return await action();
  } catch (error) {
    S.showError(`${what} failed: ${error.message}`);
    return undefined;
  }
};

S.cli = function cli(command, label) {
  const when = new Date().toLocaleTimeString();
  const entry = el("div", { class: "entry" }, el("p", { class: "when", text: label ? `${when} · ${label}` : when }), el("pre", { text: command }));
  const box = $("cli");
  if (box.firstChild && box.firstChild.querySelector("pre").textContent === command) box.firstChild.remove(); // the same again: once, newest
  box.prepend(entry);
  while (box.children.length > 12) box.lastChild.remove();
};

// --- tabs and the address (#project=…&tab=…&run=…, so a reload comes back to the same place) ----
S.show = function show(tab) {
  S.tab = tab;
  for (const button of document.querySelectorAll("#tabs button")) button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  for (const section of document.querySelectorAll("section.tab")) section.hidden = section.id !== `tab-${tab}`;
  writeHash();
  const handler = S.tabs[tab];
  if (handler && handler.open && (tab === "projects" || S.project)) handler.open();
};

function writeHash() {
  const parts = [];
  if (S.project) parts.push(`project=${enc(S.project)}`);
  parts.push(`tab=${S.tab}`);
  if (S.run) parts.push(`run=${enc(S.run)}`);
  history.replaceState(null, "", `#${parts.join("&")}`);
}

document.querySelectorAll("#tabs button").forEach((button) => button.addEventListener("click", () => S.show(button.dataset.tab)));
document.addEventListener("click", (event) => {
  const go = event.target.closest("[data-go]");
  if (go) S.show(go.dataset.go);
});

// --- projects ------------------------------------------------------------------------------------
S.tabs.projects = {
  async open() {
    const body = await S.act("Listing the projects", () => S.api("GET", "/api/projects"));
    if (!body) return;
    S.root = body.root;
    $("workdir").textContent = `Projects live in ${body.workdir}` + (body.root ? `; folders under ${body.root} can be imported.` : ".");
    $("project-list").replaceChildren(...body.projects.map((project) => el("li", {},
      el("button", { type: "button", class: project.name === S.project ? "current" : null, onclick: () => S.openProject(project.name, "data") },
        el("strong", { text: project.name }), ` ${project.classes} classes · ${project.runs} runs`))));
    if (!body.projects.length) $("project-list").replaceChildren(el("li", { class: "muted", text: "No project yet: name one above." }));
  },
};

$("new-project").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("project-input").value.trim();
  S.act(`Creating project ${name}`, async () => {
    const body = await S.api("POST", "/api/projects", { name });
    S.cli(`mkdir -p ${body.folder}`, "new project");
    $("project-input").value = "";
    await S.openProject(body.name, "data");
  });
});

S.openProject = async function openProject(name, tab, run = null) {
  S.project = name;
  S.run = run;
  S.data = null;
  $("project-name").textContent = name;
  document.querySelectorAll("#tabs button").forEach((button) => { button.disabled = false; });
  if (S.tabs.train && S.tabs.train.reset) S.tabs.train.reset();
  await S.refreshRuns();
  S.show(tab);
  if (tab !== "data") await S.refreshProject();
  if (S.tabs.train && S.tabs.train.preload) S.tabs.train.preload(); // the model list loads TensorFlow once: start early
};

S.refreshProject = async function refreshProject() {
  const body = await S.act("Reading the project", () => S.api("GET", S.path()));
  if (!body) return null;
  S.data = body;
  S.classes = body.classes.map((entry) => entry.name);
  document.dispatchEvent(new CustomEvent("studio:project"));
  return body;
};

// The run picker: every run of the project, newest last; keeps the chosen one, else the newest finished.
S.refreshRuns = async function refreshRuns() {
  const body = await S.act("Listing the runs", () => S.api("GET", S.path("/runs")));
  if (!body) return;
  S.runs = body.runs;
  const names = S.runs.map((run) => run.run);
  if (!S.run || !names.includes(S.run)) {
    const finished = S.runs.filter((run) => run.state === "finished");
    S.run = (finished.length ? finished[finished.length - 1] : S.runs[S.runs.length - 1] || {}).run || null;
  }
  $("run-pick").replaceChildren(...S.runs.map((run) => el("option", { value: run.run, selected: run.run === S.run,
    text: `${run.run} · ${run.state}${run.accuracy != null ? ` · ${S.percent(run.accuracy)}` : ""}` })));
  $("run-choice").hidden = !S.runs.length;
  writeHash();
  document.dispatchEvent(new CustomEvent("studio:runs"));
};

S.setRun = function setRun(run) {
  S.run = run;
  if ([...$("run-pick").options].some((option) => option.value === run)) $("run-pick").value = run;
  writeHash();
};

$("run-pick").addEventListener("change", () => {
  S.setRun($("run-pick").value);
  S.show(S.tab);
});

// --- data: class cards, uploads, import, what prepare found --------------------------------------
S.tabs.data = { open: () => S.refreshProject() };
const uploadNotes = {}; // class → {text, refused}: survives the cards being redrawn

document.addEventListener("studio:project", () => {
  const data = S.data;
  $("data-summary").textContent = `${S.count(data.pictures, "picture")} in ${S.count(data.classes.length, "class", "classes")}` +
    (data.sources.length ? ` (imported: ${data.sources.join(", ")})` : "") + (data.overrides.length ? ` · ${S.count(data.overrides.length, "picture")} relabelled or excluded` : "");
  $("classes").replaceChildren(...data.classes.map(card));
  if (!data.classes.length) $("classes").append(el("p", { class: "muted", text: "No class yet: add one above (one per kind of picture)." }));
  $("import-note").textContent = S.root ? `Folders under ${S.root} (the studio's --root); only read, never changed.`
    : "Importing folders is off: start the studio with --root DIR to allow folders under DIR.";
  showPrepared(data);
});

function card(entry) {
  const name = entry.name;
  const input = el("input", { type: "file", multiple: true, accept: "image/*", class: "file-input", "aria-label": `add pictures to ${name}` });
  input.addEventListener("change", () => { upload(name, [...input.files]); input.value = ""; });
  const note = uploadNotes[name] || {};
  const node = el("article", { class: "card", dataset: { class: name } },
    el("header", {}, el("h3", { class: "name", text: name }), el("span", { class: "count", text: S.count(entry.count, "picture") })),
    el("div", { class: "sheet" }, entry.samples.map((key) => el("img", { src: S.thumb(key), alt: "", title: key, loading: "lazy" }))),
    el("label", { class: "add button" }, "add pictures", input),
    el("p", { class: "upload-note", text: note.text || "" }),
    el("ul", { class: "refused" }, (note.refused || []).map((item) => el("li", { text: `${item.file}: ${item.reason}` }))),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "rename", onclick: () => rename(node, name), text: "Rename" }),
      el("button", { type: "button", class: "remove", onclick: (event) => remove(event.target, name), text: "Remove" })));
  node.addEventListener("dragover", (event) => { event.preventDefault(); node.classList.add("over"); });
  node.addEventListener("dragleave", () => node.classList.remove("over"));
  node.addEventListener("drop", (event) => {
    event.preventDefault();
    node.classList.remove("over");
    upload(name, [...event.dataTransfer.files]);
  });
  return node;
}

// A file dropped anywhere else must not make the browser leave the page to show it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

S.upload = async function upload(name, files) {
  if (!files.length) return;
  const note = (uploadNotes[name] = { text: `Uploading ${files.length} files…`, refused: [] });
  const shown = document.querySelector(`.card[data-class="${CSS.escape(name)}"] .upload-note`);
  if (shown) shown.textContent = note.text;
  let added = 0;
  const ok = await S.act(`Uploading to ${name}`, async () => {
    for (let start = 0; start < files.length; start += UPLOAD_PART) {
      const form = new FormData();
      files.slice(start, start + UPLOAD_PART).forEach((file) => form.append("files", file, file.name || "picture"));
      const body = await S.api("POST", S.path(`/classes/${enc(name)}/pictures`), form, `upload to ${name}`);
      added += body.added.length;
      note.refused.push(...body.refused);
      if (shown) shown.textContent = `Uploaded ${Math.min(start + UPLOAD_PART, files.length)} of ${files.length}…`;
    }
    return true;
  });
  note.text = `${ok ? "" : "Stopped: "}${added} added` + (note.refused.length ? `, ${note.refused.length} refused:` : ".");
  await S.refreshProject();
  return { added, refused: note.refused };
};
const upload = S.upload;

function rename(node, name) {
  const input = el("input", { value: name, "aria-label": `new name for ${name}` });
  const form = el("form", { class: "row" }, input, el("button", { type: "submit", text: "Save" }),
    el("button", { type: "button", text: "Cancel", onclick: () => S.refreshProject() }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    S.act(`Renaming ${name}`, async () => {
      const body = await S.api("PATCH", S.path(`/classes/${enc(name)}`), { name: input.value }, `rename ${name}`);
      if (uploadNotes[name]) uploadNotes[body.class] = uploadNotes[name];
      await S.refreshProject();
    });
  });
  node.querySelector("header").replaceWith(form);
  input.focus();
  input.select();
}

// Two clicks (no blocking confirm dialog): the first arms the button for a few seconds.
function remove(button, name) {
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = `Remove ${name}? Click again`;
    setTimeout(() => { button.classList.remove("armed"); button.textContent = "Remove"; }, 4000);
    return;
  }
  S.act(`Removing ${name}`, async () => {
    const body = await S.api("DELETE", S.path(`/classes/${enc(name)}`));
    await S.refreshProject();
    $("data-summary").textContent += ` · removed ${body.removed}: ${body.note}`;
  });
}

$("new-class").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("class-input").value;
  S.act(`Adding class ${name.trim()}`, async () => {
    await S.api("POST", S.path("/classes"), { name }, "new class");
    $("class-input").value = "";
    await S.refreshProject();
  });
});

$("import-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const path = $("import-path").value.trim();
  S.act(`Importing ${path}`, async () => {
    const body = await S.api("POST", S.path("/sources"), { path });
    S.cli(`corolla data inspect ${body.source}`, "import");
    $("import-path").value = "";
    await S.refreshProject();
    $("import-note").textContent = `Imported ${body.source}: classes ${body.classes.join(", ")}.`;
  });
});

$("prepare-button").addEventListener("click", () => S.act("Preparing the data", async () => {
  await S.api("POST", S.path("/prepare"), undefined, "prepare");
  for (;;) {
    const job = await S.api("GET", S.path("/prepare"));
    $("prepare-state").textContent = `prepare: ${job.state}`;
    if (job.state === "failed") throw new Error(`${job.error || "prepare failed"}\n${(job.log || []).join("\n")}`);
    if (job.state !== "queued" && job.state !== "running") break;
    await S.sleep(1000);
  }
  await S.refreshProject();
}));

function showPrepared(data) {
  const box = $("prepared");
  if (!data.prepared) {
    box.replaceChildren(el("p", { class: "muted", text: "Not prepared yet: a training prepares the data first (or check it now)." }));
    return;
  }
  const splits = Object.entries(data.splits).map(([split, info]) => `${split}: ${info.count}`).join(" · ");
  const group = (entry) => el("li", {}, entry.sources.map((source) => el("span", { class: "dup" },
    el("img", { src: S.thumb(source.source), alt: "" }), ` ${source.source} (${source.split})`)));
  box.replaceChildren(
    el("p", { text: `Prepared: ${splits}.` }),
    el("h4", { text: `Skipped files (${data.skipped.length})` }),
    data.skipped.length ? el("ul", { id: "skipped" }, data.skipped.map((entry) => el("li", { text: `${entry.source}: ${entry.reason}` })))
      : el("p", { class: "muted", text: "None: every file was a readable picture." }),
    el("h4", { text: `Duplicates (${data.duplicates.length} groups)` }),
    data.duplicates.length ? el("ul", { id: "duplicates" }, data.duplicates.map(group)) : el("p", { class: "muted", text: "None." }),
    el("h4", { text: `Train/eval leaks (${data.leaks.length})` }),
    data.leaks.length ? el("div", {}, el("p", { class: "error-text", text: "The same picture is in both train and eval: the eval score is flattered. Exclude one copy (Review) or remove it." }),
      el("ul", { id: "leaks" }, data.leaks.map(group))) : el("p", { class: "muted", text: "None." }));
  box.querySelectorAll(".dup img").forEach((image) => image.addEventListener("error", () => image.remove()));
}

// --- start: back to where the address says ---------------------------------------------------------
window.addEventListener("DOMContentLoaded", async () => {
  const hash = new URLSearchParams(location.hash.slice(1));
  const project = hash.get("project");
  if (project) {
    S.tab = hash.get("tab") || "data";
    await S.openProject(project, S.tab, hash.get("run"));
  } else {
    S.show("projects");
  }
});
