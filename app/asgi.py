"""create_app(): plugins, routes, templates, exception handlers. No domain logic here."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from app.accounts.controllers import ROUTES as ACCOUNT_ROUTES
from app.accounts.principal import principal_of_session
from app.assessments.controllers import ROUTES as ASSESSMENT_ROUTES
from app.audit.tasks import start_drain, stop_drain
from app.certificates.controllers import PUBLIC_ROUTES as CERTIFICATE_PUBLIC_ROUTES
from app.certificates.controllers import ROUTES as CERTIFICATE_ROUTES
from app.certificates.public import PublicLookup
from app.db import (
    DriverPool,
    SqliteReader,
    beside,
    hold_sqlite_file,
    make_engine,
    make_read_only_sessionmaker,
    make_sessionmaker,
    make_writer_engine,
    sqlite_file,
    sqlite_shared_by_workers,
)
from app.exams.cache import ExamCache
from app.exams.controllers import ROUTES as EXAM_ROUTES
from app.exams.controllers import MyExamApi, MyExamPages
from app.exams.fastlane import ExamFastLane
from app.exams.tasks import start_sweeper, stop_sweeper
from app.exams.writer import ExamWriter
from app.lib.errors import READ_SIDE, exception_handler, reject_impossible_ids
from app.lib.guards import AuthMiddleware, SessionBackend
from app.lib.headers import security_headers
from app.lib.health import health
from app.lib.openapi import problem_documented_plugins
from app.lib.ratelimit import FileStore, RateLimiter, RedisStore, SharedStore
from app.lib.static import static_files
from app.lib.templating import configure_jinja
from app.lib.web import close_unsent, provide_db, provide_read_db, transaction_edge
from app.rosters.audit_log import ROUTES as AUDIT_ROUTES
from app.rosters.controllers import ROUTES as ROSTER_ROUTES
from app.rosters.controllers import RegisterApi, RegisterPages
from app.rosters.services.counts import CountCache
from app.settings import Settings, get_settings
from app.training.controllers import ROUTES as TRAINING_ROUTES

HERE = Path(__file__).resolve().parent


def rate_store(settings: Settings) -> SharedStore | None:
    """Where the rate limits count: Redis (``REDIS_URL``) for every worker and instance; for the
    workers of one ``app serve`` without it, a file on this machine (beside the SQLite database, or
    the one the server names on PostgreSQL); else None (each limiter in this process's memory: a
    process serving alone)."""
    if settings.redis_url:
        return RedisStore(settings.redis_url)
    if sqlite_shared_by_workers(settings.database_url):
        path = sqlite_file(settings.database_url)
        assert path is not None
        return FileStore(beside(path, ".limits"))
    if settings.workers_limits_file and not settings.is_sqlite:
        return FileStore(settings.workers_limits_file)
    return None


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size, echo=settings.db_echo)
    # SQLite: the write-intent sessions share one connection (app.db.make_writer_engine).
    write_engine = make_writer_engine(settings.database_url, echo=settings.db_echo) or engine
    # SQLite: the candidate's pages read in place, without aiosqlite's thread (app.lib.inplace_sqlite).
    in_place = (
        make_engine(
            settings.database_url, pool_size=settings.db_pool_size, echo=settings.db_echo, in_place=True
        )
        if write_engine is not engine
        else None
    )
    # One driver-level pool per process for the hot paths that bypass the ORM (PostgreSQL only).
    driver = None if settings.is_sqlite else DriverPool(settings.database_url, size=settings.db_pool_size)
    # The public pages read from the replica when there is one (DATABASE_READ_URL), else the primary.
    read_engine, read_driver = engine, driver
    if settings.database_read_url:
        read_engine = make_engine(settings.read_url, pool_size=settings.db_pool_size, echo=settings.db_echo)
        read_driver = (
            None if settings.is_sqlite else DriverPool(settings.read_url, size=settings.db_pool_size)
        )
    # Rate limits counted in Redis by every worker and instance together; by the workers of one
    # server on SQLite together, in a file beside the database; or by each limiter here.
    rates = rate_store(settings)
    # SQLite: the exam day's saves and submits are written by one writer, in batches (app.exams.writer).
    writer = ExamWriter.for_url(settings.database_url)
    state = State(
        {
            "settings": settings,
            "db_engine": engine,
            "db_write_engine": write_engine,
            "db_sessionmaker": make_sessionmaker(engine, write=False),
            "db_write_sessionmaker": make_sessionmaker(write_engine),
            "db_read_engine": read_engine,
            "db_read_sessionmaker": make_read_only_sessionmaker(read_engine),
            "db_in_place_sessionmaker": make_read_only_sessionmaker(in_place or engine),
            # Failed sign-ins per address, and sign-ins per account name (app.accounts.controllers.auth).
            "login_limiter": RateLimiter("login", limit=20, window_seconds=60, store=rates),
            "login_name_limiter": RateLimiter("login_name", limit=20, window_seconds=60, store=rates),
            "rate_store": rates,  # the shared store, or None: each limiter's own memory
            "register_limiter": RateLimiter("register", limit=60, window_seconds=60, store=rates),
            "roster_counts": CountCache(),
            "verify_limiter": RateLimiter(
                "verify", limit=settings.verify_rate_per_minute, window_seconds=60, store=rates
            ),
            "driver": driver,
            # SQLite: the per-request reads of a row (the principal), in place on the loop's thread.
            "sqlite_reader": SqliteReader.for_url(settings.database_url),
            "public_lookup": PublicLookup(settings.read_url, driver=read_driver),
            "exam_cache": ExamCache(),  # question versions and draw pools (app.exams.cache)
            "exam_writer": writer,
        }
    )

    async def dispose_engine() -> None:
        await state.public_lookup.close()  # closes the (read) driver pool
        if state.sqlite_reader is not None:
            state.sqlite_reader.close()
        if writer is not None:
            await writer.close()
        if driver is not None and driver is not read_driver:
            await driver.close()
        await engine.dispose()
        if write_engine is not engine:
            await write_engine.dispose()
        if read_engine is not engine:
            await read_engine.dispose()
        if in_place is not None:
            await in_place.dispose()

    session_config = CookieBackendConfig(
        secret=settings.session_key,
        key=settings.cookie_name("zf_session"),
        max_age=settings.session_max_age,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
    )
    csrf = DefineMiddleware(
        CSRFMiddleware,
        config=CSRFConfig(
            secret=settings.csrf_secret,
            cookie_name=settings.cookie_name("zf_csrf"),
            header_name="x-csrftoken",
            cookie_secure=settings.secure_cookies,
            cookie_samesite="strict",
            cookie_httponly=False,
        ),
    )
    session_backend = SessionBackend(config=session_config)
    session = session_backend.middleware()
    # Each kind of route gets the stack it needs (Router-level middleware; nothing app-wide):
    # - public and cookieless: no session, no principal, no CSRF; a scan never sets a cookie; its
    #   sessions are read-only, on the replica when there is one (DATABASE_READ_URL);
    # - candidate (the exam attempt): CSRF checked first, then the fast lane answers the ordinary
    #   autosave and submit (PostgreSQL: the driver pool; SQLite: the exam writer) before the
    #   session and the principal are loaded;
    # - staff (everything else): session, principal, CSRF.
    # The candidate's and the staff's routes name records by integer ids, which a before_request
    # hook bounds (a 404 rather than the driver's overflow); the public routes have none, so a scan
    # does not run it (tests/integration/lib/test_out_of_range.py checks every route).
    public = Router(
        path="/",
        route_handlers=[
            health,
            *CERTIFICATE_PUBLIC_ROUTES,
            RegisterApi,
            RegisterPages,
            static_files,
        ],
        dependencies={"db": Provide(provide_read_db)},
        opt={READ_SIDE: True},
    )
    candidate_routes = [MyExamApi, MyExamPages]
    candidate = Router(
        path="/",
        route_handlers=candidate_routes,
        middleware=[
            csrf,
            ExamFastLane(settings, session_backend, driver, writer),
            session,
            AuthMiddleware(principal_of_session),
        ],
        before_request=reject_impossible_ids,
    )
    staff = Router(
        path="/",
        route_handlers=[
            *ACCOUNT_ROUTES,
            *AUDIT_ROUTES,
            *TRAINING_ROUTES,
            *(r for r in ROSTER_ROUTES if r not in (RegisterApi, RegisterPages)),
            *CERTIFICATE_ROUTES,
            *(r for r in EXAM_ROUTES if r not in candidate_routes),
            *ASSESSMENT_ROUTES,
        ],
        middleware=[session, AuthMiddleware(principal_of_session), csrf],
        before_request=reject_impossible_ids,
    )
    app = Litestar(
        route_handlers=[public, candidate, staff],
        state=state,
        dependencies={"db": Provide(provide_db)},
        template_config=TemplateConfig(
            directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=configure_jinja
        ),
        # The schema is built on its first request, not here (every worker and test app builds one).
        openapi_config=OpenAPIConfig(
            title="行政执法人员资格管理系统 API",
            version="1.0.0",
            description="JSON API of the qualification and certification system for administrative law-enforcement officers.",
            path="/schema",
            render_plugins=problem_documented_plugins(),
        ),
        exception_handlers={Exception: exception_handler},
        before_send=[transaction_edge, security_headers(hsts=settings.secure_cookies)],
        after_response=close_unsent,
        request_max_body_size=settings.max_upload_bytes,
        # The time-up sweep and the audit outbox drain run in every server process; the tests
        # drive them themselves.
        on_startup=[] if settings.env == "test" else [start_sweeper, start_drain],
        on_shutdown=[stop_sweeper, stop_drain, dispose_engine, *([rates.close] if rates else [])],
        debug=False,
    )
    return app


GC_THRESHOLDS = (20_000, 20, 20)
"""The cycle collector's thresholds in a server process (CPython's default: 700, 10, 10)."""


def tune_gc() -> None:
    """Make the cycle collector run rarely and cheaply in a server process.

    At CPython's default thresholds a busy worker collected its young generation about ten times a
    second and the whole heap every 15-20 s. On exam day (10,000 candidates, two workers on two
    cores) each full collection stopped a worker for 250-330 ms, and every request waiting on it
    waited that long: the autosave p99. Almost everything here is freed by reference counting;
    the collector only has to find the occasional cycle. So: everything built at startup (modules,
    classes, the app, the routes) goes to the permanent generation, which no collection walks;
    and a collection waits for 20,000 net new container objects instead of 700.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


SWITCH_INTERVAL_S = 0.001
"""How long a server process's thread may hold the GIL while another waits for it (CPython's
default: 5 ms)."""


def tune_threads() -> None:
    """Let the database threads have the GIL back within a millisecond, not five.

    The event loop's thread is the busy one; aiosqlite's connection threads and the SQLite exam
    writer's thread run short statements and give the GIL up around each (SQLite works without it).
    To take it back they waited for the loop's thread to reach the switch interval: on exam day
    (10,000 candidates, one process at 0.8 cores) the writer's thread got about one statement in
    each 5 ms, its batches fell behind, and autosaves waited 7 s (p50) with a core to spare. At
    1 ms a waiting thread is served five times as often; a thread alone pays nothing.
    ``bench/exam_day.py`` shows the difference; ``tests/unit/test_serve.py`` the setting.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def app_factory() -> Litestar:
    """Entry point for uvicorn --factory (each worker process builds its own app and engine)."""
    hold_sqlite_file(get_settings().database_url)  # one server per SQLite file
    app = create_app()
    tune_gc()
    tune_threads()
    return app
