from corolla.export.saved_model import export

__all__ = ['export']
