"""The label config parser's cost follows the config's size (issue 22 item 2), counted in a fresh interpreter.

The count is the calls made from `lsml.label_config`'s own code while it parses (Python and builtin, from
a profile hook): the parse's CPU cost as a number, so no clock is read (expat's own work, linear in the
text, is one call). It runs in an interpreter of its own, not in pytest's: twice, in loaded passes of the
whole suite, a tracing hook in pytest's process (an opcode tracer first, then this profile hook) stopped
making progress at a call under CPython 3.11, and the SIGALRM handler of pytest-timeout then spun at its
own call for good (py-spy and gdb: the handler's frame, under `handle_signals`, called at `parse_config`'s
entry), hanging the run instead of failing a test. The exact CPython cause is not found; a process of its
own has no leftover threads, no alarm, and a timeout that fails the test instead of hanging the suite.
The counts tell the parsers apart: 3.99x for 4x the config now, 11.2x for the quadratic parser issue 22
replaced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

COUNT_CALLS = """
import json, sys
import lsml.label_config as module
from tests.runtime.test_label_config import _repeaters


def calls_in_parse(config):
    count = 0

    def counted(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call") and frame.f_code.co_filename == module.__file__:
            count += 1

    sys.setprofile(counted)
    try:
        module.parse_config(config)
    finally:
        sys.setprofile(None)
    return count


print(json.dumps({n: calls_in_parse(_repeaters(n)) for n in (100, 400)}))
"""


def test_parsing_cost_grows_linearly_with_the_config():
    done = subprocess.run(
        [sys.executable, "-c", COUNT_CALLS], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    small, large = counts["100"], counts["400"]
    assert small > 100, counts  # the hook saw the parse (a few hundred calls for 100 controls at least)
    assert large / small < 5, f"4x the config cost {large / small:.1f}x the calls (linear: ~4x)"
