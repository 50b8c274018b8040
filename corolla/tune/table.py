"""The trials of a tune as rows: the live Rich table, the final ranking, OUT/results.json.

Example:
    rows = trial_rows(tuner)                     # one dict per trial, best first when ranked
    console.print(render(rows, title="corolla tune"))
"""

from __future__ import annotations

import json

from rich.table import Table

from corolla.tune.tuner import OBJECTIVE, trial_dir


def trial_rows(tuner, *, ranked: bool = False) -> list[dict]:
    """Every trial the oracle has handed out: its number, status, chosen values, epochs, score, seconds."""
    rows = []
    for trial in tuner.oracle.trials.values():
        folder = trial_dir(tuner.out, trial.trial_id)
        history_path = folder / "history.json"
        history = json.loads(history_path.read_text()) if history_path.is_file() else {}
        options = tuner.trial_options(trial)
        score = float(trial.score) if trial.status == "COMPLETED" and trial.score is not None else None
        rows.append({
            "trial": folder.name,
            "status": "deferred" if trial.trial_id == tuner.deferred else trial.status.lower(),
            "values": {name: options.get(name) for name, param in tuner.space.items() if param.kind != "fixed"},
            "epochs": options.get("epochs"),
            "epochs_done": len(history.get(OBJECTIVE, [])),
            OBJECTIVE: score,
            "seconds": tuner.budget.trial_seconds.get(trial.trial_id),
            "run_dir": str(folder),
        })  # fmt: skip
    if ranked:
        rows.sort(key=lambda row: (row[OBJECTIVE] is None, -(row[OBJECTIVE] or 0.0), row["trial"]))
    return rows


def render(rows: list[dict], *, title: str, limit: int | None = None) -> Table:
    table = Table("trial", "status", title=title)
    table.add_column("settings", overflow="fold", ratio=1)
    for name in ("epochs", "validation accuracy", "seconds"):
        table.add_column(name, justify="right")
    for row in rows[:limit]:
        running = row["status"] == "running"
        status = f"running {row['epochs_done']}/{row['epochs']}" if running else row["status"]
        score = "–" if row[OBJECTIVE] is None else f"{row[OBJECTIVE]:.2%}"
        seconds = "–" if row["seconds"] is None else f"{row['seconds']:.0f}"
        table.add_row(row["trial"], status, settings_text(row["values"]), str(row["epochs"]), score, seconds)
    return table


def settings_text(values: dict) -> str:
    """The tuned values, short: "model=fastnet learning_rate=0.00312 augment=light"."""
    return " ".join(f"{name}={_value(value)}" for name, value in values.items())


def _value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
