from corolla.train.trainer import train

__all__ = ['train']


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, train)  # `corolla.train(...)` even once the module is imported
