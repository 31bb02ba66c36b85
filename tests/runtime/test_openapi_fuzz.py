"""schemathesis against a real gunicorn server's own /openapi.json, with Basic auth off and on (issue 10, item 4),
with the embedded queue and with Redis (a real redis-server; issue 22 item 9: RQ refuses inputs the embedded
runner only looks up). About 90 s per queue on 2 cores.

The run is the CLI's (`st run`): schemathesis' engine with its default checks and phases (examples,
coverage, fuzzing), so it also sends undeclared methods (TRACE), schema-violating bodies, and, with
auth on, requests without credentials. Seeded and derandomized, but not the same cases on every
machine: with `CI` set, Hypothesis loads its CI profile and generates differently, so a case set tuned
on one machine is not the one CI runs. Bounded: about 2,400 requests in about a minute on 2 cores. The
model is trivial (tests/fixtures/rq_procs.py's `Counter`), so no case waits for a real model.

What it asserts (issue 10 item 4: "no 5xx and no response that breaks the schema"): no 5xx, and no
response that breaks the spec (undocumented status, body or content type off-schema, a 405 without
`Allow`). The input-side checks (a schema-valid request refused, a schema-violating one accepted) are
counted and printed with the requests that caused them, not failed: which such cases come up varies
with the generation profile, and the ones seen in CI so far were a lenient server ignoring query
parameters the spec does not name (as HTTP servers conventionally do). The server and the spec agree on
every other such case found (hostname pattern, empty `project=`, prelabel and version bodies). One refusal is counted apart: a label config that is a JSON string but not a parseable Label
Studio config gets `400 invalid_label_config`, which no JSON Schema can express (the spec's description
says so). The figures are printed to the terminal (past pytest's capture) and recorded in
bench/README.md.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis  # a dev extra (pyproject.toml): missing, the module fails to import, loudly
from schemathesis.engine import StopReason, events, from_schema

from tests.fixtures.rq_procs import Procs, start_server, write_backend

SEED = 20261130
MAX_EXAMPLES = 100  # per operation and phase: ~1,050 requests without auth, ~1,370 with it
USER, PASSWORD = "ls", "fuzz-pass"
# Checks on what the server answered: a failure here is a response that breaks the spec.
RESPONSE_CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
}


@dataclass
class Figures:
    mode: str
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    schema_violations: list[str] = field(default_factory=list)
    input_mismatches: list[str] = field(default_factory=list)
    label_config_refusals: int = 0
    errors: list[str] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def line(self) -> str:
        return (
            f"{self.mode}: {self.cases} cases, {self.server_errors} 5xx, {len(self.schema_violations)} schema "
            f"violations, {len(self.input_mismatches)} input mismatches, {self.label_config_refusals} label "
            f"configs refused as 400 (not expressible in JSON Schema); statuses {dict(sorted(self.statuses.items()))}"
        )


def _error_code(interaction) -> str | None:
    if interaction is None or interaction.response is None:
        return None
    try:
        return json.loads(interaction.response.content or b"null").get("error")
    except (ValueError, AttributeError):
        return None


def _request(interaction) -> str:
    """The request that was sent (method, URL, body head): what a reader needs to reproduce a mismatch."""
    request = getattr(interaction, "request", None)
    if request is None:
        return "?"
    body = (getattr(request, "body", None) or b"")[:160]
    return f"{request.method} {request.uri} body={body!r}"


def fuzz(base_url: str, mode: str, auth: tuple[str, str] | None) -> Figures:
    config = {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},  # no links in the spec: nothing to chain
        "continue-on-failure": True,
        "workers": 1,
        "request-timeout": 30,
    }
    if auth is not None:
        config["auth"] = {"basic": {"username": auth[0], "password": auth[1]}}
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", config=schemathesis.Config.from_dict(config))
    figures = Figures(mode)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                figures.cases += 1
                if interaction.response is not None:
                    figures.statuses[interaction.response.status_code] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status.name != "FAILURE":
                        continue
                    interaction = recorder.interactions.get(case_id)
                    failure = getattr(check.failure_info, "failure", None)
                    what = f"{recorder.label} {check.name}: {getattr(failure, 'title', failure)}"
                    if check.name in RESPONSE_CHECKS:
                        figures.schema_violations.append(what)
                    elif (
                        check.name == "positive_data_acceptance" and _error_code(interaction) == "invalid_label_config"
                    ):
                        figures.label_config_refusals += 1
                    else:
                        figures.input_mismatches.append(
                            f"{what} -> {_error_code(interaction)} [{_request(interaction)}]"
                        )
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            figures.errors.append(repr(getattr(event, "value", None) or getattr(event, "exception", None)))
        elif isinstance(event, events.EngineFinished):
            figures.stop_reason = str(event.stop_reason)
    return figures


@pytest.mark.parametrize("queue", ["embedded", "redis"])
def test_schemathesis_finds_no_5xx_and_no_spec_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture, request: pytest.FixtureRequest, queue: str
):
    """Both queues: with Redis, `/job_status` and `/prelabel` reach RQ, which raises on what the embedded
    runner only looks up (a job id RQ refuses was a 500 there: issue 22 item 9)."""
    redis_url = request.getfixturevalue("redis_url") if queue == "redis" else None
    procs = Procs(tmp_path)
    results: list[Figures] = []
    try:
        for mode, auth in ((f"{queue}, auth off", None), (f"{queue}, auth on", (USER, PASSWORD))):
            slug = mode.replace(" ", "-").replace(",", "")
            backend = write_backend(tmp_path / slug)
            env = {"BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD} if auth else {}
            name = f"server-{slug}"
            url = start_server(procs, backend, redis_url, name=name, workers=1, **env)
            figures = fuzz(url, mode, auth)
            results.append(figures)
            with capsys.disabled():
                print("\nschemathesis " + figures.line())
            assert "unhandled" not in procs.log(name), procs.log(name)[-3000:]
    finally:
        procs.stop_all()

    total = sum(f.cases for f in results)
    with capsys.disabled():
        print(
            f"schemathesis total: {total} cases, {sum(f.server_errors for f in results)} 5xx, "
            f"{sum(len(f.schema_violations) for f in results)} schema violations, "
            f"{sum(len(f.input_mismatches) for f in results)} input mismatches"
        )
    for f in results:
        assert f.stop_reason == str(StopReason.COMPLETED) and not f.errors, (f.mode, f.stop_reason, f.errors)
        assert f.server_errors == 0, f.line()
        assert not f.schema_violations, "\n".join(sorted(set(f.schema_violations)))
        if f.input_mismatches:  # reported, not failed (module docstring): the requests, for whoever looks
            with capsys.disabled():
                print(
                    f"schemathesis {f.mode}: input disagreements (reported):\n  "
                    + "\n  ".join(sorted(set(f.input_mismatches))[:10])
                )
        assert f.cases >= 900 and f.statuses[200] > 100, f.line()  # the run really exercised the API
    assert results[1].statuses[401] > 0, "with auth on, requests without credentials must have been tried"
    assert results[0].statuses[401] == 0
    assert total >= 2000, total
