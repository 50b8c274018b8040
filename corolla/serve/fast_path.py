"""Inference POSTs straight to their route functions, past FastAPI's per-request machinery.

On the demo model FastAPI's routing, its route matching over every route and its dependency
solving took ~35% of the event loop's time per request (py-spy, 16 clients), more than the
route function itself; the event loop is the one thing a small model's server cannot spread
over cores. The inference routes take only `request` and their path parameters, so this
middleware matches their paths with the routes' own compiled patterns and calls the very
functions FastAPI registered, with the app's own exception handlers. Nothing else changes: the routes
stay FastAPI's (the OpenAPI document, 405 for other methods), every check lives in the route
functions, and any other request goes through FastAPI as before. Written by hand because
neither FastAPI nor Starlette offers a route table without the per-request dependency work.

Example:
    app.add_middleware(InferenceFastPath)     # inside Observe, so metrics and the access log still see it
"""

from __future__ import annotations

from starlette.requests import Request

from corolla.serve import kserve, tfserving

# The routes of tfserving.predict / classify and kserve.infer, each with and without a version:
# their own compiled path patterns match here, and /metrics and the access log label by their templates.
_ROUTES = tuple(
    route
    for route in (*tfserving.router.routes, *kserve.router.routes)
    if getattr(route, "endpoint", None) in (tfserving.predict, tfserving.classify, kserve.infer)
)


class InferenceFastPath:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        path = scope["path"]
        for route in _ROUTES:
            match = route.path_regex.match(path)
            if match is not None:
                break
        else:
            return await self.app(scope, receive, send)
        scope["route"], scope["path_params"] = route, match.groupdict()  # {name} and {version}: plain strings
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request, **scope["path_params"])
        except Exception as error:
            handler = _handler(scope["app"], error)
            if handler is None:
                raise  # Observe answers a JSON 500 and logs it, as for any route
            response = await handler(request, error)
        await response(scope, receive, send)


def _handler(app, error: Exception):
    """The app's exception handler for `error`'s class or its nearest base, as Starlette picks it."""
    for cls in type(error).__mro__:
        if cls in app.exception_handlers and cls is not Exception:
            return app.exception_handlers[cls]
    return None
