"""KerasTuner's search driving ordinary `corolla train` runs, one per trial, in this process.

KerasTuner's oracles (Hyperband, Bayesian optimisation, random search) pick the settings and keep
their state in OUT/keras_tuner/ after every change, which is what makes a killed tune resume: on
reload the oracle hands the unfinished trial out again, and its run folder continues from its
`last.keras`. Each trial is `corolla.train.train(...)` into OUT/trials/NNN, scored by its best
accuracy on the validation split (never the prepared eval split; see corolla.tune.holdout).

Example:
    tuner = CorollaTuner(oracle, space=space, data_dir=view, out=out, base=settings)
    tuner.search(stop=budget.exhausted)
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import statistics
import time

import keras_tuner

from corolla.tune.space import declare, trial_options

OBJECTIVE = "val_accuracy"
ALGORITHMS = ("hyperband", "bayesian", "random")
STATE = "tune.json"  # seconds spent over every session, for --time-budget across resumes
COST_OPTIONS = ("model", "backbone", "fine_tune", "augment", "batch_size", "cache_features")  # what sets a trial's seconds per epoch


class _Stop(Exception):
    """Raised before a new trial when the budget or --max-trials is reached."""


class _Space(keras_tuner.HyperModel):
    def __init__(self, space):
        super().__init__()
        self.space = space

    def build(self, hp):
        declare(self.space, hp)


def make_oracle(algorithm: str, *, space, max_trials: int | None, seed: int):
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    if algorithm == "hyperband":
        return keras_tuner.oracles.HyperbandOracle(objective=objective, max_epochs=int(space["epochs"].values[0]), factor=3, seed=seed)
    oracle = {"bayesian": keras_tuner.oracles.BayesianOptimizationOracle, "random": keras_tuner.oracles.RandomSearchOracle}[algorithm]
    return oracle(objective=objective, max_trials=max_trials or 20, seed=seed)


class Budget:
    """--time-budget across sessions: seconds recorded in OUT/tune.json plus this session's, and each trial's."""

    def __init__(self, out: pathlib.Path, seconds: float | None):
        self.path, self.seconds = out / STATE, seconds
        state = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.before, self.trial_seconds = state.get("spent_seconds", 0.0), state.get("trial_seconds", {})
        self.started = time.monotonic()
        self.trial_started: dict[str, float] = {}

    def spent(self) -> float:
        return self.before + time.monotonic() - self.started

    def begin(self, trial_id: str) -> None:
        self.trial_started[trial_id] = time.monotonic() - self.trial_seconds.get(trial_id, 0.0)

    def end(self, trial_id: str) -> None:
        self.trial_seconds[trial_id] = round(time.monotonic() - self.trial_started.pop(trial_id), 1)
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps({"spent_seconds": round(self.spent(), 1), "trial_seconds": self.trial_seconds}, indent=1) + "\n")

    def exhausted(self) -> bool:
        return self.seconds is not None and self.spent() >= self.seconds

    def fits(self, expected_seconds: float | None) -> bool:
        """Whether a trial expected to take this long ends within the budget (an unknown length is given the chance)."""
        return self.seconds is None or expected_seconds is None or self.spent() + expected_seconds <= self.seconds


def trial_dir(out: pathlib.Path, trial_id: str, execution: int = 0) -> pathlib.Path:
    name = f"{int(trial_id) + 1:03d}" + (f"-{execution + 1}" if execution else "")
    return out / "trials" / name


class CorollaTuner(keras_tuner.engine.base_tuner.BaseTuner):
    def __init__(self, oracle, *, space, data_dir, out: pathlib.Path, executions: int = 1, seed: int = 42, budget: Budget, max_trials: int | None, on_event=None):
        self.space, self.data_dir, self.out = space, str(data_dir), out
        self.executions, self.seed, self.budget, self.max_trials = executions, seed, budget, max_trials
        self.on_event = on_event or (lambda kind, trial: None)
        self.deferred = None  # the trial handed out but not started because it would overrun the budget
        self.deferred_seconds = None  # and how long it was expected to take
        with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner prints "Reloading Tuner from …"; the caller says so itself
            super().__init__(oracle=oracle, hypermodel=_Space(space), directory=str(out), project_name="keras_tuner", overwrite=False)

    def finished_trials(self) -> list:
        return [trial for trial in self.oracle.trials.values() if trial.status in ("COMPLETED", "FAILED", "INVALID")]

    def pre_create_trial(self):
        if self.budget.exhausted() or (self.max_trials and len(self.finished_trials()) >= self.max_trials):
            raise _Stop()

    def on_trial_begin(self, trial):
        expected = self.expected_seconds(trial)
        if not self.budget.fits(expected):
            self.deferred, self.deferred_seconds = trial.trial_id, expected  # the oracle keeps it as ongoing: a resume with more time runs it
            self.on_event("deferred", trial)
            raise _Stop()
        self.budget.begin(trial.trial_id)
        self.on_event("begin", trial)

    def run_trial(self, trial, **_):
        from corolla.train import train

        options = self.trial_options(trial)
        scores = []
        for execution in range(self.executions):
            run_dir = trial_dir(self.out, trial.trial_id, execution)
            train(self.data_dir, out=run_dir, seed=self.seed + execution, verbose=False, **options)
            history = json.loads((run_dir / "history.json").read_text())
            scores.append(max(history[OBJECTIVE]))
            _clear_session()
        return {OBJECTIVE: statistics.mean(scores)}

    def expected_seconds(self, trial) -> float | None:
        """Its epochs × the most seconds per epoch of finished trials that cost alike (COST_OPTIONS), else of any; None before any finished."""
        options = self.trial_options(trial)
        cost = tuple(options.get(name) for name in COST_OPTIONS)
        alike, others = [], []
        for finished in self.finished_trials():
            seconds, finished_options = self.budget.trial_seconds.get(finished.trial_id), self.trial_options(finished)
            if finished.status == "COMPLETED" and seconds:
                rate = seconds / _epochs(finished_options)
                (alike if tuple(finished_options.get(name) for name in COST_OPTIONS) == cost else others).append(rate)
        rates = alike or others
        return max(rates) * _epochs(options) if rates else None

    def trial_options(self, trial) -> dict:
        values = trial.hyperparameters.values
        options = trial_options(self.space, values)
        if "tuner/epochs" in values:  # Hyperband's share of epochs for this round (each trial trains from scratch)
            options["epochs"] = int(values["tuner/epochs"])
        return options

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.budget.end(trial.trial_id)
        self.on_event("end", self.oracle.trials[trial.trial_id])

    def search(self, **_):
        from corolla.errors import CorollaError

        from keras_tuner.src import config as tuner_config

        debug, tuner_config.DEBUG = tuner_config.DEBUG, False  # its DEBUG prints each failed trial's traceback; LiveTrials prints the reason
        try:
            super().search(verbose=0)
        except _Stop:
            pass
        except RuntimeError as error:  # KerasTuner gives up after 3 failed trials in a row
            if "consecutive failures" not in str(error):
                raise
            last = [line for line in str(error).strip().splitlines() if line.strip()][-1]
            raise CorollaError(f"Three trials in a row failed, so the tune stopped; the last one said: {last}. Their run folders are under {self.out / 'trials'}.") from None
        finally:
            tuner_config.DEBUG = debug
            self.budget.save()

    def save_model(self, trial_id, model, step=0):  # each trial's run folder holds its checkpoints
        pass

    def load_model(self, trial):
        from corolla.run import Run

        return Run(trial_dir(self.out, trial.trial_id)).load_model()


def _epochs(options: dict) -> int:
    from corolla.config import TrainConfig

    return int(options.get("epochs") or TrainConfig.epochs)


def _clear_session() -> None:
    import gc

    import keras

    keras.backend.clear_session()  # one process, many models: free each trial's graphs
    gc.collect()

