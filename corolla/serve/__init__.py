from corolla.serve.app import create_app, serve

__all__ = ['create_app', 'serve']
