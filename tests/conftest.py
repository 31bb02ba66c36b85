"""Shared pytest configuration: the real services tests talk to are fixtures in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.redis",
    "tests.fixtures.kubernetes",
    "tests.fixtures.label_studio",
    "tests.fixtures.http_recorder",
    "tests.fixtures.operator_fakes",
    "tests.fixtures.unit_layer",
]

# Reference backends vendored unmodified (tests/vendor/label_studio_ml_backend/README.md): their test files
# run in their own directory and venv (tests/compat), never collected by lsml's pytest run.
collect_ignore = ["vendor"]
