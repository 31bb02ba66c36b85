"""Shared pytest configuration: the real services tests talk to are fixtures in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.redis",
    "tests.fixtures.kubernetes",
    "tests.fixtures.label_studio",
    "tests.fixtures.http_recorder",
    "tests.fixtures.operator_fakes",
]
