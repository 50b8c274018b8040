// The Review tab: a finished run's confusion matrix (a cell opens its pictures), the worst
// mistakes and most confident errors, and per picture keep / relabel / exclude (keyboard too),
// recorded as label overrides that the next training applies; Retrain starts it.
"use strict";

(function review() {
  const { el, api, act } = S;
  const view = { run: null, report: null, classes: [], items: [], index: -1, list: "worst", title: "", kept: new Set(), overrides: new Map() };

  async function open() {
    $("review-run").textContent = S.run ? `· run ${S.run}` : "";
    if (!S.run) {
      clear("No run yet: train one first.");
      return;
    }
    if (view.run === S.run && view.report) {
      await loadOverrides();
      return;
    }
    let report;
    try {
      report = await api("GET", S.runPath("/report"));
    } catch (error) {
      clear(error.status === 404 ? error.message : `Reading the report failed: ${error.message}`);
      return;
    }
    Object.assign(view, { run: S.run, report, classes: report.classes, kept: new Set() });
    const metrics = report.metrics;
    $("review-summary").textContent = `Accuracy ${S.percent(metrics.accuracy)} · macro F1 ${S.percent(metrics.macro_avg.f1)} on ${metrics.count} ${metrics.split} pictures` +
      ` · ${S.count(errors().length, "mistake")}`;
    matrix(metrics.confusion_matrix);
    await loadOverrides();
    choose("worst");
  }

  function clear(message) {
    view.report = null;
    view.run = null;
    $("review-summary").textContent = message;
    $("confusion").replaceChildren();
    $("gallery").replaceChildren();
    $("picked").hidden = true;
  }

  async function loadOverrides() {
    const data = await S.refreshProject();
    if (!data) return;
    view.overrides = new Map(data.overrides.map((entry) => [entry.key, entry.label]));
    $("review-note").textContent = data.overrides.length ? `${S.count(data.overrides.length, "picture")} relabelled or excluded: applied by the next training.` : "";
    gallery();
  }

  const errors = () => view.report.predictions.filter((row) => row.label !== row.predicted);

  function matrix(rows) {
    const classes = view.classes;
    const head = el("tr", {}, el("th", { text: "true ↓ / predicted →" }), classes.map((name) => el("th", { text: name })));
    const body = rows.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      return el("tr", {}, el("th", { text: classes[i] }), row.map((count, j) => {
        const cell = el("td", { class: `cell${i === j ? " diagonal" : ""}${count ? "" : " empty"}`, tabindex: count ? "0" : null,
          title: `${S.count(count, `${classes[i]} picture`)} predicted ${classes[j]}`, dataset: { row: classes[i], col: classes[j], count: String(count) },
          text: String(count) });
        cell.style.setProperty("--share", String(count / total));
        if (count) {
          const openCell = () => choose("cell", classes[i], classes[j]);
          cell.addEventListener("click", openCell);
          cell.addEventListener("keydown", (event) => { if (event.key === "Enter") openCell(); });
        }
        return cell;
      }));
    });
    $("confusion").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  }

  // Which pictures the gallery shows: the worst mistakes (highest loss first, as predictions.csv
  // is sorted), the most confident errors, or one cell of the matrix.
  function choose(list, label, predicted) {
    view.list = list;
    const rows = view.report.predictions;
    if (list === "worst") {
      view.items = errors();
      view.title = `${S.count(view.items.length, "mistake")}, worst (highest loss) first`;
    } else if (list === "confident") {
      view.items = errors().sort((a, b) => b.confidence - a.confidence);
      view.title = `${S.count(view.items.length, "mistake")}, most confident first`;
    } else {
      view.items = rows.filter((row) => row.label === label && row.predicted === predicted);
      view.title = `${S.count(view.items.length, `${label} picture`)} predicted ${predicted}`;
    }
    document.querySelectorAll("#lists button").forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.list === list)));
    document.querySelectorAll("#confusion td.cell").forEach((cell) => cell.classList.toggle("open", list === "cell" && cell.dataset.row === label && cell.dataset.col === predicted));
    view.index = view.items.length ? 0 : -1;
    gallery();
  }
  document.querySelectorAll("#lists button").forEach((button) => button.addEventListener("click", () => view.report && choose(button.dataset.list)));

  function decision(row) {
    if (view.overrides.has(row.key)) {
      const label = view.overrides.get(row.key);
      return label == null ? { text: "excluded", kind: "excluded" } : label === row.label ? { text: "kept", kind: "kept" } : { text: `→ ${label}`, kind: "relabelled" };
    }
    return view.kept.has(row.key) ? { text: "kept", kind: "kept" } : null;
  }

  function gallery() {
    if (!view.report) return;
    $("gallery-title").textContent = view.title;
    $("gallery").replaceChildren(...view.items.map((row, index) => {
      const done = decision(row);
      return el("figure", { class: `thumb${index === view.index ? " selected" : ""}`, dataset: { key: row.key, index: String(index) }, onclick: () => select(index) },
        el("img", { src: S.thumb(row.key), alt: `${row.label} picture`, loading: "lazy" }),
        el("figcaption", {}, `${row.label} → ${row.predicted} `, el("span", { class: "confidence", text: S.percent(row.confidence, 0) })),
        done ? el("span", { class: `badge ${done.kind}`, text: done.text }) : null);
    }));
    if (!view.items.length) $("gallery").append(el("p", { class: "muted", text: "No picture here." }));
    picked();
  }

  function select(index) {
    if (index < 0 || index >= view.items.length) return;
    view.index = index;
    gallery();
    const node = $("gallery").children[index];
    if (node && node.scrollIntoView) node.scrollIntoView({ block: "nearest" });
  }

  function picked() {
    const row = view.items[view.index];
    $("picked").hidden = !row;
    if (!row) return;
    $("picked-image").src = S.thumb(row.key);
    $("picked-info").textContent = `${row.key}\nlabelled ${row.label} · predicted ${row.predicted} (${S.percent(row.confidence)}) · loss ${row.loss.toFixed(3)}`;
    const done = decision(row);
    $("picked-decision").textContent = done ? `Decision: ${done.text}` : "Not reviewed yet.";
    $("picked-actions").replaceChildren(
      el("button", { type: "button", dataset: { action: "keep" }, text: "Keep (k)", onclick: keep }),
      ...S.classes.slice(0, 9).map((name, i) => el("button", { type: "button", class: "relabel", dataset: { label: name }, text: `${i + 1} · ${name}`,
        disabled: name === row.label && !view.overrides.has(row.key), onclick: () => relabel(name) })),
      el("button", { type: "button", dataset: { action: "exclude" }, text: "Exclude (x)", onclick: () => relabel(null) }),
      el("button", { type: "button", dataset: { action: "undo" }, text: "Undo (u)", onclick: undo }));
  }

  // Keep: the label the run saw is right (a change made before is taken back to it).
  function keep() {
    const row = view.items[view.index];
    if (!row) return;
    if (view.overrides.has(row.key)) return relabel(row.label);
    view.kept.add(row.key);
    next();
  }

  function relabel(label) {
    const row = view.items[view.index];
    if (!row) return;
    return act(label == null ? "Excluding the picture" : `Relabelling to ${label}`, async () => {
      await api("POST", S.path("/overrides"), { key: row.key, label }, label == null ? "exclude" : `relabel to ${label}`);
      view.kept.delete(row.key);
      await loadOverrides();
      next();
    });
  }

  function undo() {
    return act("Undoing", async () => {
      const body = await api("POST", S.path("/overrides/undo"));
      if (!body.undone) {
        $("review-note").textContent = "Nothing to undo.";
        return;
      }
      await loadOverrides();
      const index = view.items.findIndex((row) => row.key === body.undone.key);
      if (index >= 0) select(index);
    });
  }

  function next() {
    if (view.index < view.items.length - 1) select(view.index + 1);
    else gallery();
  }

  document.addEventListener("keydown", (event) => {
    if (S.tab !== "review" || !view.report || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea, [contenteditable]")) return;
    const key = event.key;
    if (key === "ArrowRight" || key === "ArrowDown") select(view.index + 1);
    else if (key === "ArrowLeft" || key === "ArrowUp") select(view.index - 1);
    else if (key === "k") keep();
    else if (key === "x") relabel(null);
    else if (key === "u") undo();
    else if (/^[1-9]$/.test(key) && S.classes[Number(key) - 1]) relabel(S.classes[Number(key) - 1]);
    else return;
    event.preventDefault();
  });

  $("retrain-button").addEventListener("click", () => act("Retraining", async () => {
    const run = S.runs.find((entry) => entry.run === S.run);
    if (!run) throw new Error(`run ${S.run} is not in this project any more`);
    const body = {};
    for (const [key, value] of Object.entries(run.settings)) if (value != null && value !== "") body[key] = value;
    await S.startRun(body, `retrain like ${run.run}`);
  }));

  S.tabs.review = { open };
})();
