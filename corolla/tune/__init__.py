"""`corolla tune`: KerasTuner over ordinary `corolla train` runs (see corolla.tune.search)."""

from corolla.tune.search import tune

__all__ = ["tune"]


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, tune)  # `corolla.tune(...)` even once the module is imported
