"""taskorg webview: Flask pages to submit tasks and watch the cluster.

`create_app(config, secret)` builds the app; `webview.serve.run(config)`
serves it with cheroot (HTTPS unless `tls: false`) on the node's address and `webview_port`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from taskorg import openapi
from taskorg.config import Config
from taskorg.metrics import http as probes
from taskorg.webview import filters, security
from taskorg.webview.cluster import ClusterApi, LiveCluster
from taskorg.webview.history import HistoryCache
from taskorg.webview.jobs import AfterCache

ApiFactory = Callable[[Config, str], ClusterApi]

# How long a login lasts without activity (the cookie is refreshed on use).
SESSION_LIFETIME = timedelta(hours=12)


def create_app(config: Config, secret: str, api_factory: ApiFactory | None = None) -> Flask:
    """The webview app. `api_factory(config, secret)` gives the cluster access (tests pass a fake)."""
    app = Flask(__name__)
    app.config.update(
        # Derived from the cluster secret: every node's webview accepts the
        # same session (the user follows `master.<suffix>` across a failover),
        # and rotating the cluster secret logs everyone out.
        SECRET_KEY=security.derive_key(secret, "session"),
        WTF_CSRF_SECRET_KEY=security.derive_key(secret, "csrf"),
        # A token lives as long as the session it is bound to: a page left
        # open for an afternoon must still be able to cancel a task.
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_NAME="taskorg_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Served over HTTPS unless TLS is off: then the browser never sends the cookie in clear.
        SESSION_COOKIE_SECURE=config.tls,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        MAX_CONTENT_LENGTH=1024 * 1024,  # a spec is text; a megabyte is plenty
        TASKORG_CONFIG=config,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["taskorg_api"] = (api_factory or LiveCluster)(config, secret)
    app.extensions["taskorg_after_cache"] = AfterCache()
    app.extensions["taskorg_history_cache"] = HistoryCache()
    security.store_verifier(app, secret)
    security.install_bookkeeping(app, SESSION_LIFETIME.total_seconds())
    CSRFProtect(app)
    filters.register(app)

    from taskorg.webview import actions, api, auth, errors, log_stream, pages

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(actions.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(log_stream.bp)
    errors.register(app)
    security.install(app)
    probes.install(app, "webview", lambda: None, authorize=True, secret=secret)
    openapi.install(app, "webview")
    return app
