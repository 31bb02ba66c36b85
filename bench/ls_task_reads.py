"""What one read of Label Studio's task list costs it, by page size, position and paging style (issue 21 part 3).

Why: with Label Studio's import flag the pre-labelling job spends about half its time reading tasks
(`GET /api/tasks?fields=task_only`), and the job reaches only 43% of Label Studio's write ceiling. Whether a
different read could close that gap depends on where the read's time goes: a fixed cost per request (then
bigger pages help), a cost that grows with the page's offset (then paging by id, `filter:tasks:id greater`,
helps), or a cost per task (then neither does). This bench measures all three on one project, in one run,
each cell repeated and the order rotated, so the machine's noise hits every cell alike.

    .venv/bin/python bench/ls_task_reads.py [--tasks 10000] [--rounds 5] [--out bench/results/ls-task-reads.json]

The stack is the tests' Label Studio 1.23.2 (SQLite, `label-studio start`, `LSML_LABEL_STUDIO_BIN`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "runtime"))
sys.path.insert(0, str(BENCH / "backends"))

import textmodel  # noqa: E402

from harness import loadavg, machine  # noqa: E402
from tests.fixtures.label_studio import LabelStudioServer, find_label_studio_binary  # noqa: E402

PAGE_SIZES = (50, 200, 1000)
#: Where in the project a page starts, as a share of its tasks (the first page, a middle one, the last ones).
POSITIONS = (0.0, 0.5, 0.9)


def by_page(client: Any, project: int, offset: int, size: int, fields: str) -> dict:
    """Label Studio's page numbers (what the job reads today): page `offset // size + 1`."""
    return client.get_json(
        "/api/tasks/",
        params={"project": project, "page": offset // size + 1, "page_size": size, "fields": fields},
    )


def by_id(client: Any, project: int, after_id: int, size: int, fields: str) -> dict:
    """Keyset paging: the first page of the tasks whose id is greater than `after_id`, ordered by id."""
    query = json.dumps(
        {
            "filters": {
                "conjunction": "and",
                "items": [{"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": after_id}],
            },
            "ordering": ["tasks:id"],
        }
    )
    return client.get_json(
        "/api/tasks/", params={"project": project, "page": 1, "page_size": size, "fields": fields, "query": query}
    )


def make_project(client: Any, tasks: int) -> tuple[int, int]:
    """A project of `tasks` generated texts; returns its id and its first task's id."""
    project = client.create_project("lsml task-read bench", textmodel.LABEL_CONFIG)["id"]
    rng = random.Random(7)
    items = [{"data": {"text": textmodel.make_text(rng, rng.choice(textmodel.LABELS))}} for _ in range(tasks)]
    for start in range(0, tasks, 2000):
        client.import_tasks(project, items[start : start + 2000])
    first = client.task_page(project, 1, 1, fields="task_only")[0][0]["id"]
    return project, int(first)


def measure(client: Any, project: int, first_id: int, tasks: int, rounds: int, fields: str) -> list[dict]:
    cells: list[tuple[str, int, float, Callable[[], dict]]] = []
    for size in PAGE_SIZES:
        for share in POSITIONS:
            offset = min(int(tasks * share) // size * size, tasks - size)
            cells.append(("page", size, share, lambda o=offset, s=size: by_page(client, project, o, s, fields)))
            cells.append(
                ("id", size, share, lambda o=offset, s=size: by_id(client, project, first_id - 1 + o, s, fields))
            )
    seconds: dict[int, list[float]] = {i: [] for i in range(len(cells))}
    for r in range(rounds):
        order = list(range(len(cells)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            started = time.perf_counter()
            body = cells[i][3]()
            seconds[i].append(time.perf_counter() - started)
            if len(body["tasks"]) != cells[i][1]:
                raise SystemExit(f"cell {cells[i][:3]} read {len(body['tasks'])} tasks, not {cells[i][1]}")
    rows = []
    for i, (style, size, share, _read) in enumerate(cells):
        median = statistics.median(seconds[i])
        rows.append(
            {
                "fields": fields,
                "paging": style,
                "page_size": size,
                "position": share,
                "median_ms": round(1000 * median, 1),
                "ms_per_task": round(1000 * median / size, 3),
                "runs_ms": [round(1000 * s, 1) for s in seconds[i]],
            }
        )
    return rows


def per_task_fit(rows: list[dict]) -> dict:
    """Least squares of median ms against page size: the fixed cost of a request and the cost of each task."""
    xs = [r["page_size"] for r in rows]
    ys = [r["median_ms"] for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return {"ms_per_request": round(my - slope * mx, 1), "ms_per_task": round(slope, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ls-task-reads.json")
    args = parser.parse_args()
    if args.tasks < max(PAGE_SIZES) * 2:
        parser.error(f"--tasks must be at least {max(PAGE_SIZES) * 2}")
    tmp = Path(tempfile.mkdtemp(prefix="lsml-task-reads-"))
    label_studio = LabelStudioServer(find_label_studio_binary(), tmp / "label-studio")
    label_studio.start()
    try:
        client = label_studio.client(timeout=120)
        project, first_id = make_project(client, args.tasks)
        load_before = loadavg()
        rows = [
            r
            for fields in ("task_only", "all")
            for r in measure(client, project, first_id, args.tasks, args.rounds, fields)
        ]
        fits = {
            f"{fields}/{style}": per_task_fit([r for r in rows if r["fields"] == fields and r["paging"] == style])
            for fields in ("task_only", "all")
            for style in ("page", "id")
        }
        result = {
            "machine": machine(),
            "load_average": {"before": load_before, "after": loadavg()},
            "tasks": args.tasks,
            "rounds": args.rounds,
            "rows": rows,
            "fits": fits,
        }
    finally:
        label_studio.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| fields | paging | page size | position | median ms | ms per task |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['fields']} | {r['paging']} | {r['page_size']} | {r['position']:.0%} | {r['median_ms']} | {r['ms_per_task']} |"
        )
    for name, fit in fits.items():
        print(f"{name}: {fit['ms_per_request']} ms per request + {fit['ms_per_task']} ms per task")


if __name__ == "__main__":
    main()
