"""What a tune shows while it runs: a live table of trials (Rich), a line per finished trial, the ranking.

On a terminal the table redraws every second, with the running trial's epoch read from its
history.json; elsewhere (CI logs, pipes) only the per-trial lines and the final ranking print.

Example:
    live = LiveTrials(space, verbose=True); live.attach(tuner, resuming=False)
    with live:
        tuner.search()
"""

from __future__ import annotations

from rich.console import Console
from rich.live import Live

from corolla.tune.table import render, settings_text, trial_rows
from corolla.tune.tuner import OBJECTIVE, trial_dir


class LiveTrials:
    def __init__(self, space, *, verbose: bool = True):
        self.space, self.verbose = space, verbose
        self.console = Console(stderr=True, quiet=not verbose)
        self.tuner = self.live = None

    def attach(self, tuner, *, resuming: bool) -> None:
        self.tuner = tuner
        done = len(tuner.finished_trials())
        if resuming:
            self.console.print(f"Resuming the tune in {tuner.out}: {done} trial(s) finished, {tuner.budget.before:.0f} s spent before.")
        tuned = ", ".join(f"{name} {param.describe()}" for name, param in self.space.items() if param.kind != "fixed") or "nothing"
        self.console.print(f"Searching {tuned}; trials validate on {tuner.data_dir} (its eval split is held out of train).")

    def _table(self):
        return render(trial_rows(self.tuner), title=f"corolla tune · {self.tuner.budget.spent():.0f} s")

    def __enter__(self):
        if self.verbose and self.console.is_terminal:
            self.live = Live(get_renderable=self._table, console=self.console, refresh_per_second=1, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *error):
        if self.live is not None:
            self.live.__exit__(*error)
        return False

    def event(self, kind: str, trial) -> None:
        folder = trial_dir(self.tuner.out, trial.trial_id).name
        if kind == "begin":
            options = self.tuner.trial_options(trial)
            chosen = settings_text({name: options.get(name) for name, param in self.space.items() if param.kind != "fixed"})
            self.console.print(f"Trial {folder}: {chosen}, {options.get('epochs')} epochs")
        elif kind == "deferred":
            expected, left = self.tuner.deferred_seconds, self.tuner.budget.seconds - self.tuner.budget.spent()
            self.console.print(
                f"Trial {folder} would take about {expected:.0f} s (like the finished trials alike), more than the {max(left, 0):.0f} s "
                "left of --time-budget: stopping here. Run again with a larger --time-budget to go on."
            )
        elif trial.status == "COMPLETED":
            self.console.print(f"Trial {folder}: validation accuracy {trial.score:.2%} ({self.tuner.budget.trial_seconds.get(trial.trial_id, 0):.0f} s)")
        else:
            reason = (trial.message or "").strip().splitlines()[-1:] or ["unknown error"]
            self.console.print(f"[red]Trial {folder} failed:[/] {reason[0]}")

    def summary(self, rows: list[dict], result: dict) -> None:
        self.console.print(render(rows, title=f"Ranking: {len(rows)} trial(s) in {result['seconds']:.0f} s", limit=10))
        if result["best"]:
            best = result["best"]
            self.console.print(f"Best: trial {best['trial']}, validation accuracy {best[OBJECTIVE]:.2%} → {result['best_config']}")
            self.console.print(f"Next: corolla train --config {result['best_config']}")
        else:
            self.console.print("[red]No trial finished.[/] See the reasons above; each trial's run folder is under trials/.")
