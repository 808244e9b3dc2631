"""Traceback parsing on real-looking output: Flask, Django, Celery, plain scripts."""

# Real tracebacks have long lines, and CPython prints "    | " with a trailing space.
# ruff: noqa: E501, W291

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.core.errormatch import (
    contains_error,
    matches_expected,
    parse_expected,
    repo_frames,
    repo_relative,
)
from runner.core.tracebacks import (
    ExceptionInfo,
    iter_exceptions,
    parse_all_exceptions,
    parse_last_exception,
    parse_traceback,
)

FLASK_MESSAGE = (
    "Working outside of application context.\n"
    "\n"
    "This typically means that you attempted to use functionality that needed\n"
    "the current application. To solve this, set up an application context\n"
    "with app.app_context(). See the documentation for more information."
)

FLASK_SEED = f"""\
Traceback (most recent call last):
  File "/app/scripts/seed_db.py", line 14, in <module>
    sys.exit(main())
             ^^^^^^
  File "/app/app/seed.py", line 47, in main
    count = seed_database()
            ^^^^^^^^^^^^^^^
  File "/app/app/seed.py", line 29, in seed_database
    db.create_all()
  File "/usr/local/lib/python3.11/site-packages/flask_sqlalchemy/extension.py", line 900, in create_all
    self._call_for_binds(bind_key, "create_all")
  File "/usr/local/lib/python3.11/site-packages/flask_sqlalchemy/extension.py", line 871, in _call_for_binds
    engine = self.engines[key]
             ^^^^^^^^^^^^
  File "/usr/local/lib/python3.11/site-packages/flask_sqlalchemy/extension.py", line 687, in engines
    app = current_app._get_current_object()  # type: ignore[attr-defined]
          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.11/site-packages/werkzeug/local.py", line 519, in _get_current_object
    raise RuntimeError(unbound_message) from None
RuntimeError: {FLASK_MESSAGE}
"""

DJANGO_CHAINED = """\
Traceback (most recent call last):
  File "/usr/local/lib/python3.11/site-packages/django/db/backends/utils.py", line 89, in _execute
    return self.cursor.execute(sql, params)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.11/site-packages/django/db/backends/sqlite3/base.py", line 328, in execute
    return super().execute(query, params)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
sqlite3.OperationalError: no such table: shop_order

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/shop/manage.py", line 22, in <module>
    main()
  File "/srv/shop/manage.py", line 18, in main
    execute_from_command_line(sys.argv)
  File "/usr/local/lib/python3.11/site-packages/django/core/management/__init__.py", line 442, in execute_from_command_line
    utility.execute()
  File "/srv/shop/shop/management/commands/close_orders.py", line 14, in handle
    for order in Order.objects.filter(status="open"):
  File "/usr/local/lib/python3.11/site-packages/django/db/models/query.py", line 398, in __iter__
    self._fetch_all()
  File "/usr/local/lib/python3.11/site-packages/django/db/utils.py", line 91, in __exit__
    raise dj_exc_value.with_traceback(traceback) from exc_value
  File "/usr/local/lib/python3.11/site-packages/django/db/backends/utils.py", line 89, in _execute
    return self.cursor.execute(sql, params)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
django.db.utils.OperationalError: no such table: shop_order
"""

DJANGO_RUNSERVER = """\
Watching for file changes with StatReloader
Performing system checks...

System check identified no issues (0 silenced).
January 01, 2024 - 12:00:00
Django version 4.2.9, using settings 'shop.settings'
Internal Server Error: /orders/
Traceback (most recent call last):
  File "/home/deploy/shop/.venv/lib/python3.11/site-packages/django/core/handlers/exception.py", line 55, in inner
    response = get_response(request)
               ^^^^^^^^^^^^^^^^^^^^^
  File "/home/deploy/shop/shop/views.py", line 31, in order_list
    gateway = settings.PAYMENT_GATEWAY
              ^^^^^^^^^^^^^^^^^^^^^^^^
  File "/home/deploy/shop/.venv/lib/python3.11/site-packages/django/conf/__init__.py", line 104, in __getattr__
    val = getattr(_wrapped, name)
          ^^^^^^^^^^^^^^^^^^^^^^^
django.core.exceptions.ImproperlyConfigured: The PAYMENT_GATEWAY setting must not be empty.
[01/Jan/2024 12:00:05] "GET /orders/ HTTP/1.1" 500 145
[01/Jan/2024 12:00:06] "GET /static/app.css HTTP/1.1" 200 1024
"""

CELERY_WORKER = """\
[2024-01-01 12:00:00,000: INFO/MainProcess] Task app.tasks.send_receipt[5f1c6a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6] received
[2024-01-01 12:00:00,123: ERROR/ForkPoolWorker-1] Task app.tasks.send_receipt[5f1c6a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6] raised unexpected: RuntimeError('Working outside of application context.\\n\\nThis typically means that you attempted to use functionality that needed\\nthe current application.')
Traceback (most recent call last):
  File "/usr/local/lib/python3.11/site-packages/celery/app/trace.py", line 477, in trace_task
    R = retval = fun(*args, **kwargs)
                 ^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.11/site-packages/celery/app/trace.py", line 760, in __protected_call__
    return self.run(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/app/app/tasks.py", line 12, in send_receipt
    order = db.session.get(Order, order_id)
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.11/site-packages/werkzeug/local.py", line 519, in _get_current_object
    raise RuntimeError(unbound_message) from None
RuntimeError: Working outside of application context.

This typically means that you attempted to use functionality that needed
the current application.
[2024-01-01 12:00:01,000: INFO/MainProcess] Task app.tasks.sync_stock[0c9d8e7f-aaaa-bbbb-cccc-ddddeeeeffff] received
"""

CELERY_RETRIES = """\
[2024-01-01 12:10:00,000: ERROR/ForkPoolWorker-2] Task app.tasks.sync_stock[0c9d8e7f-aaaa-bbbb-cccc-ddddeeeeffff] raised unexpected: MaxRetriesExceededError()
Traceback (most recent call last):
  File "/app/app/tasks.py", line 30, in sync_stock
    response.raise_for_status()
  File "/usr/local/lib/python3.11/site-packages/requests/models.py", line 1021, in raise_for_status
    raise HTTPError(http_error_msg, response=self)
requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: http://stock/api

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/usr/local/lib/python3.11/site-packages/celery/app/trace.py", line 477, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/app/app/tasks.py", line 33, in sync_stock
    raise self.retry(exc=exc)
  File "/usr/local/lib/python3.11/site-packages/celery/app/task.py", line 736, in retry
    raise self.MaxRetriesExceededError(
celery.exceptions.MaxRetriesExceededError: Can't retry app.tasks.sync_stock[0c9d8e7f-aaaa-bbbb-cccc-ddddeeeeffff] args:() kwargs:{}
"""

EXCEPTION_GROUP = """\
Traceback (most recent call last):
  File "/tmp/jobs.py", line 5, in g
    f()
  File "/tmp/jobs.py", line 2, in f
    raise ValueError("bad value")
ValueError: bad value

During handling of the above exception, another exception occurred:

  + Exception Group Traceback (most recent call last):
  |   File "/tmp/jobs.py", line 12, in <module>
  |     raise ExceptionGroup("many", errors)
  | ExceptionGroup: many (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Exception Group Traceback (most recent call last):
    |   File "/tmp/jobs.py", line 9, in <module>
    |     g()
    |   File "/tmp/jobs.py", line 7, in g
    |     raise ExceptionGroup("inner", [e, KeyError("k")])
    | ExceptionGroup: inner (2 sub-exceptions)
    +-+---------------- 1 ----------------
      | Traceback (most recent call last):
      |   File "/tmp/jobs.py", line 5, in g
      |     f()
      |   File "/tmp/jobs.py", line 2, in f
      |     raise ValueError("bad value")
      | ValueError: bad value
      +---------------- 2 ----------------
      | KeyError: 'k'
      +------------------------------------
    +---------------- 2 ----------------
    | TypeError: bad
type
    +------------------------------------
"""

# ``except*`` re-raising: the outer group has no traceback of its own, and a member
# carries its own chain inside the box.
EXCEPT_STAR = """\
  | ExceptionGroup:  (1 sub-exception)
  +-+---------------- 1 ----------------
    | Exception Group Traceback (most recent call last):
    |   File "/tmp/star.py", line 2, in <module>
    |     raise ExceptionGroup("first", [ValueError(1)])
    | ExceptionGroup: first (1 sub-exception)
    +-+---------------- 1 ----------------
      | ValueError: 1
      +------------------------------------
    | 
    | During handling of the above exception, another exception occurred:
    | 
    | Traceback (most recent call last):
    |   File "/tmp/star.py", line 4, in <module>
    |     raise RuntimeError("after group")
    | RuntimeError: after group
    +------------------------------------
"""

SYNTAX_ON_IMPORT = """\
Traceback (most recent call last):
  File "/app/main.py", line 1, in <module>
    import broken
  File "/app/broken.py", line 2
    def f(:
          ^
SyntaxError: invalid syntax
"""

SYNTAX_MAIN_SCRIPT = """\
  File "/app/scripts/report.py", line 7
    print("total:" total)
          ^^^^^^^^^^^^^^
SyntaxError: invalid syntax. Perhaps you forgot a comma?
"""

INDENTATION = """\
  File "/app/ind.py", line 3
    y=2
IndentationError: unexpected indent
"""


# --------------------------------------------------------------------------- Flask


def test_flask_multiline_message_and_frames() -> None:
    info = parse_last_exception(FLASK_SEED)

    assert info is not None
    assert (info.type, info.short_type) == ("RuntimeError", "RuntimeError")
    assert info.message == FLASK_MESSAGE
    assert info.summary == "RuntimeError: Working outside of application context."
    assert [f.function for f in info.frames] == [
        "<module>",
        "main",
        "seed_database",
        "create_all",
        "_call_for_binds",
        "engines",
        "_get_current_object",
    ]
    assert info.frames[0].path == "/app/scripts/seed_db.py"
    assert info.frames[0].line == 14
    assert info.frames[0].source == "sys.exit(main())"
    assert info.chain == []


def test_flask_matches_expected_error() -> None:
    info = parse_last_exception(FLASK_SEED)

    assert matches_expected(info, "RuntimeError: Working outside of application context")
    assert matches_expected(info, "RuntimeError: Working outside of application context.")
    assert matches_expected(info, "RuntimeError")
    assert matches_expected(info, "builtins.RuntimeError: Working outside")
    assert matches_expected(
        info, "RuntimeError: Working outside of application context. This typically means"
    )
    assert not matches_expected(info, "RuntimeError: Working outside of request context")
    assert not matches_expected(info, "ValueError")
    assert not matches_expected(None, "RuntimeError")


def test_print_exc_then_exit_zero_is_still_seen() -> None:
    output = "Seeding database...\n" + FLASK_SEED + "Seeding finished\n" + "exit 0\n"

    info = parse_last_exception(output)

    assert info is not None
    assert info.type == "RuntimeError"
    assert info.message.startswith(FLASK_MESSAGE)
    assert "exit 0" not in info.message
    assert contains_error(output, "RuntimeError: Working outside of application context")


# --------------------------------------------------------------------------- Django


def test_django_chained_direct_cause() -> None:
    info = parse_last_exception(DJANGO_CHAINED)

    assert info is not None
    assert info.type == "django.db.utils.OperationalError"
    assert info.short_type == "OperationalError"
    assert info.message == "no such table: shop_order"
    assert len(info.chain) == 1
    cause = info.chain[0]
    assert cause.type == "sqlite3.OperationalError"
    assert cause.linked_by == "cause"
    assert cause.message == "no such table: shop_order"
    assert len(cause.frames) == 2
    assert info.frames[3].path == "/srv/shop/shop/management/commands/close_orders.py"
    assert matches_expected(info, "OperationalError: no such table")
    assert matches_expected(info, "django.db.utils.OperationalError: no such table: shop_order")
    assert matches_expected(info, "sqlalchemy.exc.OperationalError")


def test_django_runserver_log_lines_end_the_message() -> None:
    info = parse_last_exception(DJANGO_RUNSERVER)

    assert info is not None
    assert info.type == "django.core.exceptions.ImproperlyConfigured"
    assert info.message == "The PAYMENT_GATEWAY setting must not be empty."
    assert [f.function for f in info.frames] == ["inner", "order_list", "__getattr__"]


# --------------------------------------------------------------------------- Celery


def test_celery_worker_log() -> None:
    info = parse_last_exception(CELERY_WORKER)

    assert info is not None
    assert info.type == "RuntimeError"
    assert info.message.endswith("the current application.")
    assert "Task app.tasks.sync_stock" not in info.message
    assert info.frames[2].path == "/app/app/tasks.py"
    assert matches_expected(info, "RuntimeError: Working outside of application context")


def test_celery_chained_context() -> None:
    info = parse_last_exception(CELERY_RETRIES)

    assert info is not None
    assert info.type == "celery.exceptions.MaxRetriesExceededError"
    assert info.message.startswith("Can't retry app.tasks.sync_stock[")
    assert [(c.type, c.linked_by) for c in info.chain] == [
        ("requests.exceptions.HTTPError", "context")
    ]
    assert matches_expected(info, "MaxRetriesExceededError: Can't retry")


# --------------------------------------------------------------------------- plain scripts


def test_plain_script_with_interleaved_logs_last_traceback_wins() -> None:
    output = """\
INFO:root:loading config from /etc/app.toml
WARNING:root:retrying after a handled error
Traceback (most recent call last):
  File "/app/job.py", line 8, in load
    return json.loads(raw)
ValueError: handled and logged
INFO:root:falling back to defaults
2024-01-01 12:00:00,001 DEBUG worker started
Traceback (most recent call last):
  File "/app/job.py", line 30, in <module>
    run(config["jobs"])
        ~~~~~~^^^^^^^^
KeyError: 'jobs'
"""

    info = parse_last_exception(output)
    everything = parse_all_exceptions(output)

    assert info is not None
    assert (info.type, info.message) == ("KeyError", "'jobs'")
    assert info.chain == []
    assert [e.type for e in everything] == ["ValueError", "KeyError"]
    assert everything[0].message == "handled and logged"


def test_both_chain_forms_in_one_traceback() -> None:
    output = """\
Traceback (most recent call last):
  File "/tmp/ch.py", line 5, in q
    sqlite3.connect(":memory:").execute("select * from nope")
sqlite3.OperationalError: no such table: nope

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/tmp/ch.py", line 9, in <module>
    q()
  File "/tmp/ch.py", line 7, in q
    raise OperationalError("no such table: nope") from e
OperationalError: no such table: nope

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/tmp/ch.py", line 11, in <module>
    {}["missing"]
    ~~^^^^^^^^^^^
KeyError: 'missing'
"""

    info = parse_last_exception(output)

    assert info is not None
    assert info.type == "KeyError"
    assert [(c.type, c.linked_by) for c in info.chain] == [
        ("sqlite3.OperationalError", "cause"),
        ("OperationalError", "context"),
    ]
    assert all(c.chain == [] for c in info.chain)
    assert len(parse_all_exceptions(output)) == 1


def test_unrelated_tracebacks_are_not_chained() -> None:
    first = "Traceback (most recent call last):\n  File \"/a.py\", line 1, in <module>\n    x\nNameError: name 'x' is not defined\n"
    output = first + "\nretrying\n\n" + first.replace("NameError", "TypeError")

    info = parse_last_exception(output)

    assert info is not None
    assert info.type == "TypeError"
    assert info.chain == []


def test_recursion_error_repeated_line_marker() -> None:
    output = """\
Traceback (most recent call last):
  File "/tmp/rec.py", line 2, in <module>
    r(0)
  File "/tmp/rec.py", line 1, in r
    def r(n): return r(n+1)
                     ^^^^^^
  [Previous line repeated 996 more times]
RecursionError: maximum recursion depth exceeded
"""

    info = parse_last_exception(output)

    assert info is not None
    assert info.type == "RecursionError"
    assert len(info.frames) == 2


def test_exception_without_message_and_pydantic_multiline() -> None:
    bare = 'Traceback (most recent call last):\n  File "/a.py", line 3, in <module>\n    time.sleep(10)\nKeyboardInterrupt\n'
    pydantic_error = """\
Traceback (most recent call last):
  File "/app/settings.py", line 20, in <module>
    settings = Settings()
pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
database_url
  Field required [type=missing, input_value={}, input_type=dict]
    For further information visit https://errors.pydantic.dev/2.7/v/missing
"""

    bare_info = parse_last_exception(bare)
    info = parse_last_exception(pydantic_error)

    assert bare_info is not None
    assert (bare_info.type, bare_info.message) == ("KeyboardInterrupt", "")
    assert matches_expected(bare_info, "KeyboardInterrupt")
    assert info is not None
    assert info.short_type == "ValidationError"
    assert info.message.splitlines() == [
        "1 validation error for Settings",
        "database_url",
        "  Field required [type=missing, input_value={}, input_type=dict]",
        "    For further information visit https://errors.pydantic.dev/2.7/v/missing",
    ]
    assert matches_expected(info, "ValidationError: 1 validation error for Settings database_url")


def test_container_log_prefixes_are_stripped() -> None:
    compose = """\
db-1   | LOG:  database system is ready to accept connections
web-1  | Traceback (most recent call last):
web-1  |   File "/usr/src/app/app/views.py", line 40, in create_order
web-1  |     db.session.commit()
web-1  | sqlalchemy.exc.IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: users.email
db-1   | LOG:  checkpoint starting: time
"""
    kubernetes = """\
2024-01-01T12:00:00.100000000Z stderr F Traceback (most recent call last):
2024-01-01T12:00:00.100000001Z stderr F   File "/app/worker.py", line 9, in <module>
2024-01-01T12:00:00.100000002Z stderr F     main()
2024-01-01T12:00:00.100000003Z stderr F ZeroDivisionError: division by zero
2024-01-01T12:00:00.200000000Z stdout F shutting down
"""

    info = parse_last_exception(compose)
    k8s = parse_last_exception(kubernetes)

    assert info is not None
    assert info.type == "sqlalchemy.exc.IntegrityError"
    assert info.message == "(sqlite3.IntegrityError) UNIQUE constraint failed: users.email"
    assert info.frames[0].path == "/usr/src/app/app/views.py"
    assert k8s is not None
    assert (k8s.type, k8s.message) == ("ZeroDivisionError", "division by zero")
    assert k8s.frames[0].source == "main()"


def test_prefix_on_the_header_line_only() -> None:
    output = (
        "worker: job 42 failed: Traceback (most recent call last):\n"
        + FLASK_SEED.split("\n", 1)[1]
        + "INFO worker: next job\n"
    )

    info = parse_last_exception(output)

    assert info is not None
    assert info.message == FLASK_MESSAGE
    assert len(info.frames) == 7


def test_traceback_whose_head_was_cut_off() -> None:
    output = """\
... [output truncated: 48213 bytes] ...
  File "/app/app/seed.py", line 29, in seed_database
    db.create_all()
RuntimeError: Working outside of application context.
"""

    info = parse_last_exception(output)

    assert info is not None
    assert info.type == "RuntimeError"
    assert info.frames[0].function == "seed_database"


def test_no_traceback() -> None:
    output = 'Seeded 3 users\nFile "notes.txt", line 3\nDone\n'

    assert parse_last_exception(output) is None
    assert parse_last_exception("") is None
    with pytest.raises(ValueError, match="no Python traceback"):
        parse_traceback(output)


# --------------------------------------------------------------------------- exception groups


def test_exception_group_reports_the_group() -> None:
    info = parse_last_exception(EXCEPTION_GROUP)

    assert info is not None
    assert info.type == "ExceptionGroup"
    assert info.is_group
    assert info.message == "many (2 sub-exceptions)"
    assert info.frames[0].line == 12
    assert matches_expected(info, "ExceptionGroup: many")
    assert not matches_expected(info, "ValueError")
    inner, type_error = info.exceptions
    assert (inner.type, inner.message, inner.is_group) == (
        "ExceptionGroup",
        "inner (2 sub-exceptions)",
        True,
    )
    assert [(e.type, e.message) for e in inner.exceptions] == [
        ("ValueError", "bad value"),
        ("KeyError", "'k'"),
    ]
    assert inner.exceptions[0].frames[1].function == "f"
    assert (type_error.type, type_error.message) == ("TypeError", "bad\ntype")
    assert [(c.type, c.linked_by) for c in info.chain] == [
        ("ValueError", "context"),
    ]
    # Members are reachable for "does the error appear anywhere".
    assert contains_error(EXCEPTION_GROUP, "KeyError: 'k'")
    assert contains_error(EXCEPTION_GROUP, "TypeError: bad type")


def test_except_star_group_without_traceback() -> None:
    info = parse_last_exception(EXCEPT_STAR)

    assert info is not None
    assert info.type == "ExceptionGroup"
    assert info.message.strip() == "(1 sub-exception)"
    (member,) = info.exceptions
    assert (member.type, member.message) == ("RuntimeError", "after group")
    assert [(c.type, c.message, c.linked_by) for c in member.chain] == [
        ("ExceptionGroup", "first (1 sub-exception)", "context")
    ]
    assert [e.type for e in member.chain[0].exceptions] == ["ValueError"]
    assert [e.type for e in iter_exceptions(info)] == [
        "ExceptionGroup",
        "ExceptionGroup",
        "ValueError",
        "RuntimeError",
    ]


# --------------------------------------------------------------------------- SyntaxError


def test_syntax_error_raised_on_import() -> None:
    info = parse_last_exception(SYNTAX_ON_IMPORT)

    assert info is not None
    assert (info.type, info.message) == ("SyntaxError", "invalid syntax")
    assert [f.path for f in info.frames] == ["/app/main.py"]
    assert info.syntax is not None
    assert (info.syntax.path, info.syntax.line, info.syntax.text) == (
        "/app/broken.py",
        2,
        "def f(:",
    )
    assert info.syntax.column == 7


def test_syntax_error_of_the_main_script_has_no_header() -> None:
    info = parse_last_exception("python: starting\n" + SYNTAX_MAIN_SCRIPT)
    indentation = parse_last_exception(INDENTATION)

    assert info is not None
    assert info.frames == []
    assert info.message == "invalid syntax. Perhaps you forgot a comma?"
    assert info.syntax is not None
    assert (info.syntax.path, info.syntax.line, info.syntax.column) == (
        "/app/scripts/report.py",
        7,
        7,
    )
    assert matches_expected(info, "SyntaxError: invalid syntax")
    assert indentation is not None
    assert (indentation.type, indentation.message) == ("IndentationError", "unexpected indent")
    assert indentation.syntax is not None
    assert indentation.syntax.text == "y=2"


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("expected", "type_", "short", "message"),
    [
        ("RuntimeError", "RuntimeError", "RuntimeError", None),
        ("  RuntimeError  ", "RuntimeError", "RuntimeError", None),
        ("RuntimeError:", "RuntimeError", "RuntimeError", ""),
        (
            "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError)  no such\ntable",
            "sqlalchemy.exc.OperationalError",
            "OperationalError",
            "(sqlite3.OperationalError) no such table",
        ),
    ],
)
def test_parse_expected(expected: str, type_: str, short: str, message: str | None) -> None:
    exp = parse_expected(expected)

    assert (exp.type, exp.short_type, exp.message) == (type_, short, message)


@pytest.mark.parametrize("bad", ["", "not a type: x", ": message", "Runtime Error"])
def test_parse_expected_rejects_non_types(bad: str) -> None:
    with pytest.raises(ValueError, match="expected error"):
        parse_expected(bad)


def test_matching_compares_the_last_type_component_and_a_message_prefix() -> None:
    info = ExceptionInfo(
        type="sqlalchemy.exc.OperationalError",
        short_type="OperationalError",
        message="(sqlite3.OperationalError) no such table: users\n[SQL: SELECT 1]",
    )

    assert matches_expected(info, "OperationalError")
    assert matches_expected(info, "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError)")
    assert matches_expected(info, "django.db.utils.OperationalError:   (sqlite3.OperationalError)")
    assert matches_expected(
        info, "OperationalError: (sqlite3.OperationalError) no such table: users [SQL:"
    )
    assert not matches_expected(info, "OperationalError: no such table")
    assert not matches_expected(info, "sqlalchemy.exc.IntegrityError")
    assert not matches_expected(info, "Error")


def test_contains_error_finds_literal_text_and_reprs() -> None:
    pytest_output = "E   RuntimeError: Working outside of application context.\nE\n1 failed"
    log_line = "ERROR seed failed: sqlalchemy.exc.OperationalError: no such table: users"

    assert contains_error(pytest_output, "RuntimeError: Working outside of application context")
    assert contains_error(CELERY_WORKER, "RuntimeError: Working outside of application")
    assert contains_error(CELERY_WORKER.split("Traceback")[0], "RuntimeError: Working outside")
    assert contains_error(log_line, "OperationalError: no such table")
    assert contains_error(DJANGO_CHAINED, "sqlite3.OperationalError: no such table: shop_order")
    assert contains_error(DJANGO_CHAINED, "OperationalError")


def test_contains_error_negatives() -> None:
    clean = "Seeded 3 users\nRuntimeErrorHandler installed\nno RuntimeError seen\n"

    assert not contains_error(clean, "RuntimeError")
    assert not contains_error(clean, "RuntimeError: Working outside")
    assert not contains_error(FLASK_SEED, "RuntimeError: Working outside of request context")
    assert not contains_error(FLASK_SEED, "KeyError")


# --------------------------------------------------------------------------- repo paths

REPO_FILES = {
    "app/__init__.py",
    "app/seed.py",
    "app/tasks.py",
    "scripts/seed_db.py",
    "manage.py",
    "shop/models.py",
    "shop/management/commands/close_orders.py",
    "flask/app.py",
}


@pytest.mark.parametrize(
    ("frame_path", "expected"),
    [
        ("/app/app/seed.py", "app/seed.py"),
        ("/app/scripts/seed_db.py", "scripts/seed_db.py"),
        ("/usr/src/app/scripts/seed_db.py", "scripts/seed_db.py"),
        ("/srv/shop/manage.py", "manage.py"),
        (
            "/srv/shop/shop/management/commands/close_orders.py",
            "shop/management/commands/close_orders.py",
        ),
        ("/home/deploy/shop/shop/models.py", "shop/models.py"),
        ("C:\\Users\\dev\\proj\\app\\seed.py", "app/seed.py"),
        ("app/tasks.py", "app/tasks.py"),
        ("./scripts/seed_db.py", "scripts/seed_db.py"),
        ("/app/app/missing.py", None),
        # Installed and standard-library code is context, even when a suffix matches.
        ("/usr/local/lib/python3.11/site-packages/flask/app.py", None),
        ("/home/deploy/shop/.venv/lib/python3.11/site-packages/django/db/utils.py", None),
        ("/usr/lib/python3/dist-packages/flask/app.py", None),
        ("/usr/lib/python3.11/json/decoder.py", None),
        ("C:\\Python311\\Lib\\site-packages\\flask\\app.py", None),
        ("<frozen importlib._bootstrap>", None),
        ("<string>", None),
    ],
)
def test_repo_relative(frame_path: str, expected: str | None) -> None:
    assert repo_relative(frame_path, REPO_FILES) == expected


def test_repo_frames_of_a_flask_traceback() -> None:
    tb = parse_traceback(FLASK_SEED)

    mapped = repo_frames(tb.exception, REPO_FILES)

    assert tb.frames == tb.exception.frames
    assert [(m.repo_path, m.frame.function) for m in mapped] == [
        ("scripts/seed_db.py", "<module>"),
        ("app/seed.py", "main"),
        ("app/seed.py", "seed_database"),
    ]


def test_repo_frames_include_a_syntax_error_location() -> None:
    info = parse_last_exception(SYNTAX_MAIN_SCRIPT)
    assert info is not None

    mapped = repo_frames(info, {"scripts/report.py"})

    assert [(m.repo_path, m.frame.line) for m in mapped] == [("scripts/report.py", 7)]


# --------------------------------------------------------------------------- this interpreter

REAL_SCRIPTS = {
    "chained": (
        "import sqlite3\n"
        "class OperationalError(Exception):\n    pass\n"
        "try:\n"
        "    sqlite3.connect(':memory:').execute('select * from nope')\n"
        "except sqlite3.OperationalError as exc:\n"
        "    raise OperationalError('no such table: nope') from exc\n",
        "OperationalError: no such table: nope",
        ["sqlite3.OperationalError"],
    ),
    "multiline": (
        "def seed():\n"
        "    raise RuntimeError('Working outside of application context.\\n\\nThis typically means')\n"
        "seed()\n",
        "RuntimeError: Working outside of application context. This typically",
        [],
    ),
    "group": (
        "raise ExceptionGroup('many', [ValueError('bad'), KeyError('k')])\n",
        "ExceptionGroup: many",
        [],
    ),
    "syntax": ("x = 1\nprint('total:' x)\n", "SyntaxError: invalid syntax", []),
}


@pytest.mark.parametrize("name", sorted(REAL_SCRIPTS))
def test_output_of_this_interpreter(name: str, tmp_path: Path) -> None:
    source, expected, chain_types = REAL_SCRIPTS[name]
    script = tmp_path / "main.py"
    script.write_text(source)

    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    info = parse_last_exception("starting\n" + proc.stderr + "done\n")

    assert proc.returncode == 1
    assert info is not None, proc.stderr
    assert matches_expected(info, expected), proc.stderr
    assert [c.type for c in info.chain] == chain_types
    assert contains_error(proc.stderr, expected)
    if name == "syntax":
        assert info.syntax is not None
        assert (info.syntax.path, info.syntax.line) == (str(script), 2)
    else:
        assert info.frames[0].path == str(script)
