// The Train tab (settings, live progress from Server-Sent Events, loss and accuracy curves on
// <canvas>, stop and resume) and the Runs tab (runs side by side).
"use strict";

(function train() {
  const { el, api, act } = S;
  const ACTIVE = ["queued", "running"];
  const live = { source: null, run: null, epochs: new Map(), state: null, total: null };

  // --- settings ------------------------------------------------------------------------------------
  // The recommendation follows the pictures: asked again each time the tab opens (the first ask loads TensorFlow).
  async function loadModels() {
    const body = await act("Listing the models", () => api("GET", S.path("/models")));
    if (!body) return;
    const select = $("model");
    const chosen = select.dataset.chosen;
    select.replaceChildren(el("option", { value: "auto", text: `auto (now: ${body.recommended})` }),
      ...body.models.map((model) => el("option", { value: model.name,
        text: `${model.name}${model.name === body.recommended ? " (recommended)" : ""} — ${model.description}${model.pretrained ? " · pretrained" : ""}` })));
    select.value = chosen || body.recommended;
    $("model-why").textContent = `Recommended: ${body.recommended}, because ${body.why}.`;
  }
  $("model").addEventListener("change", () => { $("model").dataset.chosen = $("model").value; });

  function settings() {
    const number = (id) => ($(id).value === "" ? null : Number($(id).value));
    const body = { model: $("model").value, epochs: number("epochs"), image_size: number("image-size") };
    if (number("batch-size") != null) body.batch_size = number("batch-size");
    if (number("learning-rate") != null) body.learning_rate = number("learning-rate");
    if ($("augment").value) body.augment = $("augment").value;
    if ($("fine-tune").checked) body.fine_tune = true;
    return body;
  }

  S.startRun = async function startRun(body, label = "train") {
    const answer = await api("POST", S.path("/runs"), body, label);
    await S.refreshRuns();
    S.setRun(answer.run);
    S.show("train");
    watch(answer.run, answer.job.state);
    return answer.run;
  };

  $("train-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("Starting the training", () => S.startRun(settings()));
  });

  // --- live progress ------------------------------------------------------------------------------
  function watch(run, state = null) {
    if (live.source) live.source.close();
    Object.assign(live, { run, epochs: new Map(), state: null, total: null, sawState: false });
    $("live").hidden = false;
    $("run-title").textContent = `Run ${run}`;
    for (const id of ["stat-epoch", "stat-speed", "stat-eta", "stat-loss", "stat-accuracy"]) $(id).textContent = "–";
    for (const id of ["run-settings", "live-note", "run-error"]) $(id).textContent = "";
    $("run-log").hidden = true;
    $("run-next").hidden = true;
    $("step-progress").value = 0;
    setState(state);
    draw();
    // EventSource reconnects by itself, sending Last-Event-ID: the studio continues after that event.
    const source = (live.source = new EventSource(S.runPath("/events", run)));
    source.addEventListener("progress", (event) => onProgress(JSON.parse(event.data)));
    source.addEventListener("state", (event) => onState(JSON.parse(event.data)));
    source.addEventListener("open", () => { $("live-note").textContent = ""; });
    source.addEventListener("error", () => {
      if (source !== live.source) return;
      $("live-note").textContent = source.readyState === EventSource.CLOSED
        ? "The progress stream closed; reload the page to reconnect." : "Connection to the studio lost; reconnecting…";
    });
  }

  function onProgress(event) {
    const epochs = event.epochs || live.total;
    live.total = epochs;
    if (event.event === "start") {
      const s = event.settings || {};
      $("run-settings").textContent = `${event.stage} stage: ${s.model}, batch ${s.batch_size}, image size ${s.image_size}, ` +
        `${s.train_images} train / ${s.eval_images} eval pictures, learning rate ${s.learning_rate}`;
      $("stat-epoch").textContent = `${event.epoch} / ${epochs}`;
      $("run-error").textContent = ""; // a resumed run: what ended the part before is over
    } else if (event.event === "features") {
      $("live-note").textContent = `Computing features once: ${event.images} of ${event.total} pictures (${Math.round(event.images_per_second)}/s)`;
      $("step-progress").value = event.total ? event.images / event.total : 0;
    } else if (event.event === "batch") {
      $("stat-epoch").textContent = `${event.epoch} / ${epochs} (step ${event.step} of ${event.steps})`;
      $("step-progress").value = event.steps ? event.step / event.steps : 0;
      stats(event);
    } else if (event.event === "epoch") {
      $("stat-epoch").textContent = `${event.epoch} / ${epochs}`;
      $("step-progress").value = 1;
      live.epochs.set(event.epoch, event.metrics || {});
      stats(event);
      draw();
    } else if (event.event === "end") {
      $("stat-eta").textContent = "0s";
      $("live-note").textContent = event.status === "interrupted" ? `Training stopped (${event.error}).`
        : event.error ? "" : `Training ${event.status}: best ${event.monitor} ${fixed(event.best)} at epoch ${event.best_epoch}` + (live.state === "running" ? "; evaluating…" : "");
      if (event.status === "failed") $("run-error").textContent = `Training failed: ${event.error}`;
      const source = live.source;
      setTimeout(() => { if (source === live.source && !live.sawState) { source.close(); finished(live.run, null); } }, 2000); // a CLI run: no job state comes
    }
  }

  function stats(event) {
    if (event.images_per_second != null) $("stat-speed").textContent = Math.round(event.images_per_second).toLocaleString();
    if (event.eta_seconds != null) $("stat-eta").textContent = duration(event.eta_seconds);
    const metrics = event.metrics || {};
    if (metrics.loss != null) $("stat-loss").textContent = fixed(metrics.loss) + (metrics.val_loss != null ? ` (eval ${fixed(metrics.val_loss)})` : "");
    if (metrics.accuracy != null) $("stat-accuracy").textContent = S.percent(metrics.accuracy) + (metrics.val_accuracy != null ? ` (eval ${S.percent(metrics.val_accuracy)})` : "");
  }

  function onState(message) {
    live.sawState = true;
    setState(message.state);
    if (message.error) $("run-error").textContent = message.error;
    if (message.log && message.log.length) showLog(message.log);
    if (message.state && !ACTIVE.includes(message.state)) {
      live.source.close();
      finished(live.run, message.state);
    } else {
      S.refreshRuns(); // the run picker and the Runs tab show the new state
    }
  }

  function setState(state) {
    live.state = state;
    $("run-state").textContent = state || "";
    $("run-state").dataset.state = state || "";
    $("stop-button").hidden = !ACTIVE.includes(state);
    $("resume-button").hidden = !["interrupted", "stopped", "failed"].includes(state);
  }

  async function finished(run, state) {
    $("run-next").hidden = state !== "finished";
    if (state === "finished") $("live-note").textContent = "Finished: trained and evaluated.";
    await S.refreshRuns();
    if (state === "failed" || state === "interrupted") {
      const view = await act("Reading the run", () => api("GET", S.runPath("", run)));
      if (view && view.log.length && run === live.run) showLog(view.log);
      if (state === "interrupted") $("live-note").textContent = "Interrupted (the studio stopped while it ran): Resume continues from the last checkpoint.";
    }
  }

  function showLog(lines) {
    $("run-log").textContent = lines.join("\n");
    $("run-log").hidden = false;
  }

  $("stop-button").addEventListener("click", () => act(`Stopping run ${live.run}`, async () => {
    const body = await api("POST", S.runPath("/stop", live.run));
    setState(body.job.state);
  }));
  $("resume-button").addEventListener("click", () => act(`Resuming run ${live.run}`, async () => {
    const body = await api("POST", S.runPath("/resume", live.run), undefined, "resume");
    watch(live.run, body.job.state);
  }));

  // --- curves ---------------------------------------------------------------------------------------
  function draw() {
    const epochs = [...live.epochs.keys()].sort((a, b) => a - b);
    const series = (name) => epochs.filter((epoch) => live.epochs.get(epoch)[name] != null).map((epoch) => [epoch, live.epochs.get(epoch)[name]]);
    chart($("loss-chart"), [{ name: "train", color: "#2a7ab0", points: series("loss") }, { name: "eval", color: "#d9822b", points: series("val_loss") }], null);
    chart($("accuracy-chart"), [{ name: "train", color: "#2a7ab0", points: series("accuracy") }, { name: "eval", color: "#d9822b", points: series("val_accuracy") }], 1);
  }

  function chart(canvas, lines, top) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 420, height = canvas.clientHeight || 220;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.font = "12px system-ui, sans-serif";
    const pad = { left: 44, right: 12, top: 26, bottom: 26 };
    const all = lines.flatMap((line) => line.points);
    canvas.dataset.points = String(Math.max(0, ...lines.map((line) => line.points.length)));
    const lastEpoch = Math.max(live.total || 1, ...all.map((point) => point[0]));
    const yMax = top || Math.max(1e-6, ...all.map((point) => point[1])) * 1.1;
    const x = (epoch) => pad.left + ((epoch - 1) / Math.max(1, lastEpoch - 1)) * (width - pad.left - pad.right);
    const y = (value) => height - pad.bottom - (value / yMax) * (height - pad.top - pad.bottom);
    g.strokeStyle = "#ddd";
    g.fillStyle = "#666";
    g.textAlign = "right";
    for (let i = 0; i <= 4; i++) {
      const value = (yMax * i) / 4;
      g.beginPath(); g.moveTo(pad.left, y(value)); g.lineTo(width - pad.right, y(value)); g.stroke();
      g.fillText(top ? `${Math.round(value * 100)}%` : value.toPrecision(2), pad.left - 6, y(value) + 4);
    }
    g.textAlign = "center";
    const step = Math.max(1, Math.ceil(lastEpoch / 10));
    for (let epoch = 1; epoch <= lastEpoch; epoch += step) g.fillText(String(epoch), x(epoch), height - 8);
    if (!all.length) {
      g.fillText(live.state === "finished" ? "no epoch recorded" : "waiting for the first epoch…", width / 2, height / 2);
    }
    lines.forEach((line, index) => {
      g.strokeStyle = g.fillStyle = line.color;
      g.lineWidth = 2;
      g.beginPath();
      line.points.forEach(([epoch, value], i) => (i ? g.lineTo(x(epoch), y(value)) : g.moveTo(x(epoch), y(value))));
      g.stroke();
      for (const [epoch, value] of line.points) { g.beginPath(); g.arc(x(epoch), y(value), 3, 0, 2 * Math.PI); g.fill(); }
      g.textAlign = "left";
      g.fillText(`● ${line.name}`, pad.left + index * 64, 14);
    });
  }

  const fixed = (value) => (value == null ? "–" : Number(value).toFixed(3));
  function duration(seconds) {
    seconds = Math.round(seconds);
    if (seconds < 60) return `${seconds}s`;
    const minutes = Math.floor(seconds / 60);
    return minutes < 60 ? `${minutes}m ${seconds % 60}s` : `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
  }

  S.tabs.train = {
    preload: () => loadModels(),
    reset() {
      if (live.source) live.source.close();
      live.run = null;
      delete $("model").dataset.chosen;
      $("live").hidden = true;
    },
    open() {
      loadModels();
      if (S.run && S.run !== live.run) watch(S.run);
      else draw();
    },
  };
  S.watch = watch;

  // --- runs side by side -------------------------------------------------------------------------
  S.tabs.runs = { open: () => S.refreshRuns() };
  document.addEventListener("studio:runs", () => {
    const runs = S.runs;
    const classes = [...new Set(runs.flatMap((run) => Object.keys(run.f1 || {})))];
    const keys = ["model", "epochs", "image_size", "batch_size", "learning_rate", "augment"];
    const best = Math.max(-1, ...runs.map((run) => run.accuracy ?? -1));
    const names = { image_size: "size", batch_size: "batch", learning_rate: "LR" };
    const head = el("tr", {}, ["run", "state", ...keys.map((key) => names[key] || key), "accuracy", "macro F1",
      ...classes.map((name) => `F1 ${name}`), "train time", ""].map((text) => el("th", { text })));
    const rows = runs.map((run, index) => el("tr", { dataset: { run: run.run }, class: run.run === S.run ? "current" : null },
      el("td", { text: run.run }), el("td", {}, el("span", { class: "state", dataset: { state: run.state }, text: run.state })),
      keys.map((key) => el("td", { text: run.settings[key] ?? "–",
        class: index && runs[index - 1].settings[key] !== run.settings[key] ? "changed" : null })),
      el("td", { class: run.accuracy != null && run.accuracy === best ? "best" : null, text: S.percent(run.accuracy) }),
      el("td", { text: S.percent(run.macro_f1) }),
      classes.map((name) => el("td", { text: S.percent((run.f1 || {})[name]) })),
      el("td", { text: run.train_seconds != null ? duration(run.train_seconds) : "–" }),
      el("td", {}, el("button", { type: "button", text: "Progress", onclick: () => { S.setRun(run.run); S.show("train"); } }),
        el("button", { type: "button", text: "Review", disabled: run.state !== "finished", onclick: () => { S.setRun(run.run); S.show("review"); } }))));
    $("runs-table").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
    if (!runs.length) $("runs-table").replaceChildren(el("tbody", {}, el("tr", {}, el("td", { text: "No run yet: train one in the Train tab." }))));
  });
})();
