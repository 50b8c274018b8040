// The page sends the chosen image (or, to a clip model, video and question) to this server's
// TF Serving API and draws the top 5 labels as bars.
"use strict";

const $ = (id) => document.getElementById(id);
let modelName = null;
let clipModel = null; // {task: "classify" | "qa", frames} when the server holds a clip model
let lastFile = null;

async function loadModel() {
  try {
    const response = await fetch("/v1/models");
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    const model = body.models[0];
    modelName = model.name;
    const noun = model.task === "qa" ? "answers" : "labels";
    $("model").textContent = `Model ${model.name}, version ${model.version}: ${model.labels.length} ${noun}`;
    if (model.kind === "clips") {
      clipModel = { task: model.task, frames: model.frames };
      $("hint").textContent = `Drop a video here, or click to choose one (MP4, WebM, MKV, AVI, MOV or GIF; ${model.frames} frames are sampled)`;
      $("file").accept = "video/*,.mp4,.m4v,.webm,.mkv,.avi,.mov,.gif";
      $("ask").hidden = model.task !== "qa";
    }
    document.querySelectorAll(".name").forEach((node) => { node.textContent = model.name; });
  } catch (error) {
    $("model").textContent = `The model is not ready (${error.message}); reload the page in a moment.`;
  }
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function showStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function drawBars(labels, probabilities) {
  const order = probabilities.map((p, i) => i).sort((a, b) => probabilities[b] - probabilities[a]).slice(0, 5);
  const list = $("bars");
  list.replaceChildren();
  for (const index of order) {
    const percent = (probabilities[index] * 100).toFixed(1);
    const item = document.createElement("li");
    item.className = "bar";
    item.dataset.label = labels[index];
    item.dataset.probability = probabilities[index];
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${percent}%`;
    const text = document.createElement("span");
    text.className = "text";
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = labels[index];
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `${percent}%`;
    text.append(name, value);
    item.append(fill, text);
    list.append(item);
  }
}

function show(file) {
  const preview = clipModel ? $("clip") : $("preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  if (clipModel) preview.play().catch(() => {}); // a format the browser cannot play is still sent
  $("hint").hidden = true;
}

async function instance(file) {
  const encoded = { b64: await base64(file) };
  if (!clipModel) return { image_bytes: encoded, key: file.name };
  const body = { video_bytes: encoded, key: file.name };
  if (clipModel.task === "qa") body.question = $("question").value;
  return body;
}

async function predict(file) {
  if (!file) return;
  lastFile = file;
  $("bars").replaceChildren();
  if (!modelName) await loadModel();
  show(file);
  if (clipModel && clipModel.task === "qa" && !$("question").value.trim()) {
    showStatus("Type a question about the clip, then press Ask.", true);
    $("question").focus();
    return;
  }
  showStatus(`Predicting ${file.name}…`);
  try {
    const started = performance.now();
    const response = await fetch(`/v1/models/${encodeURIComponent(modelName)}:predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: [await instance(file)] }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    const labels = await labelsOf();
    drawBars(labels, body.predictions[0].probabilities);
    showStatus(`${file.name}: ${body.predictions[0].labels} (${Math.round(performance.now() - started)} ms)`);
  } catch (error) {
    showStatus(`Could not predict ${file.name}: ${error.message}`, true);
  }
}

let cachedLabels = null;
async function labelsOf() {
  if (!cachedLabels) cachedLabels = (await (await fetch("/v1/models")).json()).models[0].labels;
  return cachedLabels;
}

$("file").addEventListener("change", (event) => predict(event.target.files[0]));
$("again").addEventListener("click", () => predict(lastFile));
$("question").addEventListener("keydown", (event) => { if (event.key === "Enter") predict(lastFile); });
const drop = $("drop");
drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") $("file").click(); });
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (event) => predict(event.dataTransfer.files[0]));
loadModel();
