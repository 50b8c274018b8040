"""The evaluation report: PNG plots, one self-contained index.html, and a one-screen Rich summary.

index.html inlines every image as a data: URI and has no script or external link, so it can
be mailed, attached to a ticket or opened offline.

Example:
    write_report(Run("runs/fm"), metrics, predictions.mistakes)   # runs/fm/report/index.html
    print_summary(metrics, Console())
"""

from __future__ import annotations

import base64
import html
import json

from corolla.data.storage import write_text

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}.sub{color:#666;margin-top:0}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.5rem}table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.25rem .7rem;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
img.plot{max-width:100%;height:auto}.gallery{display:flex;flex-wrap:wrap;gap:.8rem}
figure{margin:0;width:150px;font-size:12px}figure img{width:128px;height:128px;object-fit:contain;image-rendering:pixelated;background:#f4f4f4}
pre{background:#f6f6f6;padding: .8rem;overflow:auto}.bad{color:#b00}
"""


def write_report(run, metrics: dict, mistakes: list) -> None:
    """Write the plots and index.html into RUN_DIR/report/ (metrics.json is written by `evaluate`)."""
    from corolla.evaluate.plots import confusion_matrix_png, reliability_png, training_curves_png

    classes = run.config.classes
    plots = {"confusion_matrix.png": confusion_matrix_png(metrics["confusion_matrix"], classes)}
    if "calibration" in metrics:
        plots["reliability.png"] = reliability_png(metrics["calibration"])
    history = json.loads(run.history.read_text(encoding="utf-8")) if run.history.is_file() else None
    if history:
        plots["training_curves.png"] = training_curves_png(history)
    for name, png in plots.items():
        (run.report_dir / name).write_bytes(png)
    config_text = (run.dir / "config.yaml").read_text(encoding="utf-8")
    write_text(run.report_dir / "index.html", render_html(run.dir.name, metrics, classes, plots, mistakes, config_text))


def render_html(name: str, metrics: dict, classes: list[str], plots: dict[str, bytes], mistakes: list, config_text: str) -> str:
    """The report page as one string."""
    esc = html.escape

    def image(file: str, alt: str, element_id: str) -> str:
        if file not in plots:
            return ""
        return f'<img class="plot" id="{element_id}" alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(plots[file]).decode()}">'

    cards = [("accuracy", _pct(metrics["accuracy"])), ("images", f"{metrics['count']:,}")]
    cards += [(f"top-{k} accuracy", _pct(value)) for k, value in metrics.get("top_k_accuracy", {}).items()]
    cards.append(("macro F1", _pct(metrics["macro_avg"]["f1"])))
    if "calibration" in metrics:
        cards.append(("calibration error (ECE)", f"{metrics['calibration']['ece']:.3f}"))
    rows = "".join(
        f"<tr><td>{esc(label)}</td><td>{_pct(row['precision'])}</td><td>{_pct(row['recall'])}</td><td>{_pct(row['f1'])}</td><td>{row['support']:,}</td></tr>"
        for label, row in metrics["per_class"].items()
    )
    pairs = "".join(
        f"<tr><td>{esc(pair['true'])}</td><td>{esc(pair['predicted'])}</td><td>{pair['count']:,}</td><td>{_pct(pair['share_of_true'])}</td></tr>"
        for pair in metrics["most_confused"]
    ) or '<tr><td colspan="4">No confusions.</td></tr>'
    gallery = "".join(
        f'<figure><img alt="{esc(mistake.key)}" src="data:image/png;base64,{base64.b64encode(mistake.thumbnail).decode()}">'
        f"<figcaption>true <b>{esc(classes[mistake.truth])}</b><br>predicted <b class=bad>{esc(classes[mistake.predicted])}</b> "
        f"({_pct(mistake.confidence)})<br><code>{esc(mistake.key)}</code></figcaption></figure>"
        for mistake in mistakes
    ) or "<p>No mistakes.</p>"
    skipped = metrics.get("skipped") or []
    skipped_note = f"<p class=bad>{len(skipped):,} file(s) could not be read and were skipped; see metrics.json.</p>" if skipped else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>corolla report — {esc(name)}</title><style>{STYLE}</style></head><body>
<h1>{esc(name)}</h1>
<p class="sub">Split <b>{esc(str(metrics.get('split')))}</b> of {esc(str(metrics.get('data_dir')))} · checkpoint {esc(str(metrics.get('checkpoint')))}</p>
{skipped_note}
<div class="cards">{''.join(f'<div class="card"><b>{value}</b>{esc(label)}</div>' for label, value in cards)}</div>
<h2>Training curves</h2>{image('training_curves.png', 'Training curves', 'training-curves') or '<p>No history.json in the run.</p>'}
<h2>Confusion matrix</h2>{image('confusion_matrix.png', 'Confusion matrix', 'confusion-matrix')}
<h2>Most confused pairs</h2>
<table id="most-confused"><tr><th>true</th><th>predicted as</th><th>images</th><th>share of true class</th></tr>{pairs}</table>
<h2>Per class</h2>
<table id="per-class"><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>
<h2>Calibration</h2>{image('reliability.png', 'Reliability diagram', 'reliability')}
<h2>Worst mistakes</h2><p>Highest loss first: the model was confident and wrong, or the label may be.</p>
<div class="gallery" id="mistakes">{gallery}</div>
<h2>Training config</h2><pre id="config">{esc(config_text)}</pre>
</body></html>
"""


def print_summary(metrics: dict, console, *, report_dir=None, rows: int = 15) -> None:
    """Headline numbers, the per-class table (worst F1 first, up to `rows`) and the top confusions."""
    from rich.table import Table

    caption = [f"top-{k} {_pct(value)}" for k, value in metrics.get("top_k_accuracy", {}).items()]
    if "calibration" in metrics:
        caption.append(f"ECE {metrics['calibration']['ece']:.3f}")
    ordered = sorted(metrics["per_class"].items(), key=lambda item: -1 if item[1]["f1"] is None else item[1]["f1"])
    if len(ordered) > rows:
        caption.append(f"{len(ordered) - rows} more classes in the report")
    title = f"accuracy {_pct(metrics['accuracy'])} on {metrics['count']:,} images ({metrics.get('split')}), worst F1 first"
    table = Table("class", "precision", "recall", "F1", "support", title=title, caption=" · ".join(caption))
    for label, row in ordered[:rows]:
        table.add_row(label, _pct(row["precision"]), _pct(row["recall"]), _pct(row["f1"]), f"{row['support']:,}")
    console.print(table)
    confused = ", ".join(f"{pair['true']} → {pair['predicted']} ({pair['count']})" for pair in metrics["most_confused"][:3])
    if confused:
        console.print(f"Most confused: {confused}")
    if metrics.get("skipped"):
        console.print(f"[yellow]Skipped {len(metrics['skipped'])} unreadable file(s)[/], e.g. {metrics['skipped'][0]['source']}: {metrics['skipped'][0]['reason']}")
    if report_dir is not None:
        console.print(f"Report: [bold]{report_dir / 'index.html'}[/]")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
