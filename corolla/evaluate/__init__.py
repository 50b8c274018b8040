from corolla.evaluate.metrics import classification_metrics, evaluate

__all__ = ['classification_metrics', 'evaluate']
