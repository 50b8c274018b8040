// The Try it tab (a dropped picture or a webcam frame → top-5 bars; add it to the data) and the
// Ship it tab (export with its parity table, start and stop `corolla serve`).
"use strict";

(function ship() {
  const { el, api, act } = S;
  let tried = null; // {blob, name}: the last picture sent, for "add to data"
  let stream = null; // the webcam's MediaStream
  let exportPoll = 0; // increases to cancel a poll of an older run

  // --- try it -----------------------------------------------------------------------------------
  function openTry() {
    $("try-run").textContent = S.run ? `· run ${S.run}` : "";
    $("try-class").replaceChildren(...S.classes.map((name) => el("option", { value: name, text: name })));
    if (!S.classes.length) S.refreshProject().then(() => $("try-class").replaceChildren(...S.classes.map((name) => el("option", { value: name, text: name }))));
  }

  async function predict(blob, name) {
    if (!S.run) {
      S.showError("Try it needs a trained run: train one first.");
      return;
    }
    tried = { blob, name };
    const preview = $("try-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(blob);
    preview.hidden = false;
    $("bars").replaceChildren();
    $("try-note").textContent = `Asking run ${S.run}…`;
    await act("Predicting", async () => {
      const form = new FormData();
      form.append("file", blob, name);
      const body = await api("POST", S.runPath("/predict"), form, "predict");
      bars(body.top);
      $("try-note").textContent = `Run ${S.run} says ${body.top[0].label} (${S.percent(body.top[0].probability)}).`;
      $("try-add").hidden = false;
      if (S.classes.includes(body.top[0].label) && !$("try-class").dataset.touched) $("try-class").value = body.top[0].label;
    });
  }

  function bars(top) {
    $("bars").replaceChildren(...top.map((entry) => {
      const fill = el("span", { class: "fill" });
      fill.style.width = `${(entry.probability * 100).toFixed(1)}%`;
      return el("li", { class: "bar", dataset: { label: entry.label, probability: String(entry.probability) } }, fill,
        el("span", { class: "text" }, el("span", { class: "label", text: entry.label }), el("span", { class: "value", text: S.percent(entry.probability) })));
    }));
  }

  $("try-file").addEventListener("change", () => {
    const file = $("try-file").files[0];
    if (file) predict(file, file.name);
    $("try-file").value = "";
  });
  const drop = $("try-drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) predict(file, file.name);
  });
  $("try-class").addEventListener("change", () => { $("try-class").dataset.touched = "1"; });

  $("try-add-button").addEventListener("click", () => {
    if (!tried) return;
    const name = $("try-class").value;
    act(`Adding the picture to ${name}`, async () => {
      const result = await S.upload(name, [new File([tried.blob], tried.name, { type: tried.blob.type || "image/jpeg" })]);
      if (result && result.refused.length) throw new Error(`${result.refused[0].file}: ${result.refused[0].reason}`);
      $("try-note").textContent = `Added to ${name}: the next training uses it.`;
    });
  });

  // The webcam: getUserMedia → <video> → a frame drawn on a canvas → a JPEG blob.
  $("camera-start").addEventListener("click", () => act("Starting the camera", async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("this browser gives no camera access to this page");
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    $("camera").srcObject = stream;
    $("camera").hidden = false;
    $("camera-snap").hidden = $("camera-stop").hidden = false;
    $("camera-start").hidden = true;
  }));
  $("camera-snap").addEventListener("click", () => {
    const video = $("camera");
    if (!video.videoWidth) {
      S.showError("The camera shows no picture yet; wait a moment and take it again.");
      return;
    }
    const canvas = el("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => predict(blob, `camera-${Date.now()}.jpg`), "image/jpeg", 0.92);
  });
  function stopCamera() {
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    $("camera").srcObject = null;
    $("camera").hidden = $("camera-snap").hidden = $("camera-stop").hidden = true;
    $("camera-start").hidden = false;
  }
  $("camera-stop").addEventListener("click", stopCamera);

  // --- ship it: export and serve -------------------------------------------------------------------
  async function openShip() {
    $("ship-run").textContent = S.run ? `· run ${S.run}` : "";
    $("export-button").textContent = S.run ? `Export run ${S.run}` : "Export";
    $("export-button").disabled = !S.run;
    if (!S.run) return;
    const poll = ++exportPoll;
    const body = await act("Reading the export", () => api("GET", S.runPath("/export")));
    if (body && poll === exportPoll) showExport(body, poll);
    const server = await act("Reading the server", () => api("GET", S.path("/serve")));
    if (server) showServer(server);
  }

  function showExport(body, poll) {
    const state = body.job.state;
    const active = state === "queued" || state === "running";
    $("export-state").textContent = state ? `export: ${state}` + (body.job.error ? ` — ${body.job.error}` : "") + (body.version ? ` · version ${body.version}` : "")
      : body.version ? `version ${body.version}` : "not exported yet";
    $("export-state").dataset.state = state || "";
    $("export-button").disabled = active;
    $("export-log").textContent = (body.job.log || []).join("\n");
    $("export-log").hidden = !(active || state === "failed") || !body.job.log || !body.job.log.length;
    if (body.parity && !active) parity(body.parity);
    else $("parity").hidden = true;
    if (active) setTimeout(() => pollExport(poll), 1500);
  }

  async function pollExport(poll) {
    if (poll !== exportPoll) return;
    try {
      showExport(await api("GET", S.runPath("/export")), poll);
    } catch (error) {
      S.showError(`Following the export failed: ${error.message}`);
    }
  }

  function parity(summary) {
    const head = el("tr", {}, ["format", "file", "size", "max |Δp| vs Keras", "top-1 agreement"].map((text) => el("th", { text })));
    const rows = summary.formats.map((row) => el("tr", { dataset: { format: row.format } }, el("td", { text: row.format }), el("td", { text: row.path }),
      el("td", { text: `${(row.bytes / 1e3).toLocaleString(undefined, { maximumFractionDigits: 0 })} kB` }),
      el("td", { class: "max-diff", text: Number(row.max_abs_diff).toExponential(1) }),
      el("td", { class: "agreement", text: S.percent(row.top1_agreement, 2) })));
    $("parity").replaceChildren(el("caption", { text: `Each format checked against the Keras model on ${summary.parity_images} eval pictures` }),
      el("thead", {}, head), el("tbody", {}, rows));
    $("parity").hidden = false;
  }

  $("export-button").addEventListener("click", () => act(`Exporting run ${S.run}`, async () => {
    const body = await api("POST", S.runPath("/export"), undefined, "export");
    showExport({ job: body.job, version: null, parity: null }, ++exportPoll);
  }));

  function showServer(view) {
    $("serve-state").textContent = view.running ? `serving run ${view.run} at ${view.url}`
      : view.url ? `stopped${view.returncode ? ` (exit code ${view.returncode}: see ${view.run}/studio_serve.log)` : ""}` : "not serving";
    $("serve-state").dataset.running = String(view.running);
    $("serve-lines").hidden = !view.curl;
    $("serve-curl").textContent = view.curl || "";
    $("serve-python").textContent = view.python || "";
  }

  $("serve-start").addEventListener("click", () => act("Starting the server", async () => {
    const view = await api("POST", S.path("/serve"), { run: S.run, port: Number($("serve-port").value) }, "serve");
    showServer(view);
    await S.sleep(3000); // a server that cannot start (no export, port taken) has ended by now
    showServer(await api("GET", S.path("/serve")));
  }));
  $("serve-stop").addEventListener("click", () => act("Stopping the server", async () => showServer(await api("DELETE", S.path("/serve")))));

  S.tabs.try = { open: openTry };
  S.tabs.ship = { open: openShip };
  document.addEventListener("studio:project", () => { if (S.tab === "try") openTry(); });
})();
