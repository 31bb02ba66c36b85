"""What parsing a label config costs, before and after issue 22 item 2, in process CPU time.

A config reaches `lsml.label_config.parse_config` from `/setup`, `/webhook` and `/predict`, in the
request thread. The parser before the fix (written out below as it was at 08873c4) matched every control
against every earlier `indexFlag` attribute (duplicates included) and walked each Label/Choice's
ancestors: quadratic in the config. Three shapes, each at growing sizes:

- `flags`: half the text tags with the same `indexFlag`, then half controls: a valid config (one distinct
  flag), the quadratic case at its worst before (every control against every earlier flag tag).
- `repeaters`: Repeater-style blocks, each with the same `indexFlag="{{idx}}"`, a Text and a Choices:
  a valid config, quadratic before.
- `taxonomy`: one Choices with many Choice tags (a large flat taxonomy): linear before and after.
- `deep`: Views nested as deep as the size allows with a Choice at every level: quadratic before;
  refused after (`MAX_DEPTH`), so the figure is the cost of the refusal.

Best of 3 runs of `time.process_time` (CPU of this process, so other load on a shared machine counts
less than on a wall clock). The old parser runs up to 100 KB only (it takes seconds there).

Usage: .venv/bin/python bench/label_config.py   (about half a minute)
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from lsml.label_config import (
    LABEL_TAGS,
    LabelConfigError,
    _is_control,
    _is_object,
    parse_config,
)

SIZES_KB = (25, 100, 400, 1000)
OLD_UP_TO_KB = 100


def quadratic_parse_config(config: str) -> dict[str, dict[str, Any]]:
    """`parse_config` at 08873c4, minus what every shape here skips (perRegion, dynamic labels)."""
    root = ET.fromstring(config)
    parents = {child: parent for parent in root.iter() for child in parent}
    objects: dict[str, dict[str, Any]] = {}
    controls: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, dict]] = {}
    index_flags: list[str] = []
    for tag in root.iter():
        if "indexFlag" in tag.attrib:
            index_flags.append(tag.attrib["indexFlag"])
        if _is_control(tag):
            info: dict[str, Any] = {"type": tag.tag, "to_name": tag.attrib["toName"].split(",")}
            for flag in index_flags:
                for to_name in info["to_name"]:
                    if flag in to_name:
                        info.setdefault("regex", {})[flag] = ".*"
            controls[tag.attrib["name"]] = info
        elif _is_object(tag):
            objects[tag.attrib["name"]] = {"type": tag.tag, "value": tag.get("value", "").lstrip("$")}
        if tag.tag in LABEL_TAGS:
            parent = parents.get(tag)
            while parent is not None and parent.get("name") not in controls:
                parent = parents.get(parent)
            if parent is not None:
                value = tag.get("alias") or tag.get("value")
                if value:
                    labels.setdefault(parent.attrib["name"], {})[value] = dict(tag.attrib)
    for name, info in controls.items():
        info["inputs"] = [objects[n] for n in info["to_name"] if n in objects]
        info["labels"] = list(labels.get(name, {}))
    return controls


def flags(size: int) -> str:
    n = size // 2 // 22
    return (
        "<View>"
        + '<View indexFlag="i"/>' * n
        + "".join(f'<Labels name="c{i:05d}" toName="t"/>' for i in range(n))
        + "</View>"
    )


def repeaters(size: int) -> str:
    block = (
        '<View indexFlag="{{idx}}"><Text name="t%d_{{idx}}" value="$t%d"/>'
        '<Choices name="c%d" toName="t%d_{{idx}}"><Choice value="a"/></Choices></View>'
    )
    parts, total, i = [], 0, 0
    while total < size:
        parts.append(block % (i, i, i, i))
        total += len(parts[-1])
        i += 1
    return "<View>" + "".join(parts) + "</View>"


def taxonomy(size: int) -> str:
    n = size // 28
    return (
        '<View><Text name="t" value="$t"/><Choices name="c" toName="t">'
        + "".join(f'<Choice value="label{i:06d}"/>' for i in range(n))
        + "</Choices></View>"
    )


def deep(size: int) -> str:
    n = size // 36
    return "<View>" * n + '<Choice value="x"/>' * n + "</View>" * n


def cpu(parse: Callable[[str], Any], config: str) -> str:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        try:
            parse(config)
            outcome = ""
        except LabelConfigError as exc:
            outcome = f" (refused: {str(exc).split(' (')[0]})"
        best = min(best, time.process_time() - start)
    return f"{best * 1000:9.1f} ms{outcome}"


def main() -> None:
    print(f"{'shape':10} {'size':>8}  {'before (08873c4)':>18}  {'after':>12}")
    for name, make in (("flags", flags), ("repeaters", repeaters), ("taxonomy", taxonomy), ("deep", deep)):
        for kb in SIZES_KB:
            config = make(kb * 1000)
            before = cpu(quadratic_parse_config, config) if kb <= OLD_UP_TO_KB else "(not run)"
            print(f"{name:10} {len(config) / 1000:6.0f} KB  {before:>18}  {cpu(parse_config, config)}")


if __name__ == "__main__":
    main()
