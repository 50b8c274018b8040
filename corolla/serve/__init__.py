from corolla.serve.app import create_app, serve

__all__ = ['create_app', 'serve']


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, serve)  # `corolla.serve(...)` even once the module is imported
