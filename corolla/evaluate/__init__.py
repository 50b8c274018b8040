from corolla.evaluate.metrics import calibration, classification_metrics, evaluate

__all__ = ["calibration", "classification_metrics", "evaluate"]


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, evaluate)  # `corolla.evaluate(...)` even once the module is imported
