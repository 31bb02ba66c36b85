"""Shared pytest configuration: the real services tests talk to are fixtures in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.redis",
    "tests.fixtures.kubernetes",
    "tests.fixtures.label_studio",
    "tests.fixtures.http_recorder",
    "tests.fixtures.operator_fakes",
]

# Reference backends copied verbatim (tests/vendor/label_studio_ml_backend): their own test_api.py files import
# `model` from their directory, so they run only from there (as their authors run them), never in this session.
collect_ignore = ["vendor"]
