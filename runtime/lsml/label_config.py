"""Parse a Label Studio label config (XML) into its control tags.

`parse_config(xml)` returns the same shape as label-studio-sdk's helper of
the same name, without lxml or the SDK::

    {from_name: {"type": "Choices", "to_name": ["text"],
                 "inputs": [{"type": "Text", "value": "text", "valueType": None}],
                 "labels": ["Positive", "Negative"],
                 "labels_attrs": {"Positive": {"value": "Positive", ...}, ...}}}

A control tag is any tag with `name` and `toName`; an object (input) tag
is any tag with `name` and `value` (or `valueList`); labels are the
`Label`/`Choice`/`Relation` tags nested under a control, keyed by `alias`
or `value`.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from lsml.errors import LsmlError

LABEL_TAGS = frozenset({"Label", "Choice", "Relation"})
# The data key Label Studio uses for a task imported without a key (label-studio-ml-backend's `utils` name).
DATA_UNDEFINED_NAME = "$undefined$"
NOT_CONTROL_TAGS = frozenset({"Filter"})
_VARIABLE = re.compile(r"^\$[A-Za-z_]+$")


#: What one label config may hold. A config is parsed in the request thread of `/setup`, `/webhook` and
#: `/predict`; these keep one parse under a few tens of milliseconds (bench/README.md, "Label config parsing").
#: Label Studio's own templates use a few hundred tags at most; a large taxonomy fits in 20,000.
MAX_CHARS = 1024 * 1024
MAX_TAGS = 20_000
MAX_DEPTH = 64
#: Each control's `toName` is matched against every distinct `indexFlag` seen before it (Repeater's
#: `{{idx}}`): bounding the distinct values keeps that linear in the config's size.
MAX_INDEX_FLAGS = 32
_CHUNK = 64 * 1024


class LabelConfigError(LsmlError, ValueError):
    """The label config is not valid XML (or not a label config)."""


class LabelConfigTooLarge(LabelConfigError):
    """The label config holds more than a limit allows; `limit` names it, e.g. "tags"."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"label config has more than {limit} {what} (the most one config may hold)")
        self.what = what
        self.limit = limit


def _is_control(tag: ET.Element) -> bool:
    return bool(tag.get("name")) and bool(tag.get("toName")) and tag.tag not in NOT_CONTROL_TAGS


def _is_object(tag: ET.Element) -> bool:
    return bool(tag.get("name")) and bool(tag.get("value") or tag.get("valueList"))


def parse_config(config: str | None) -> dict[str, dict[str, Any]]:
    """Controls of a label config keyed by their name; `{}` for an empty config.

    One pass over the parser's start events, in linear time: a config arrives over HTTP (`/setup`,
    `/webhook`, `/predict`) and is parsed in the request thread, so its cost must follow its size.
    A config past `MAX_CHARS`, `MAX_TAGS`, `MAX_DEPTH` or `MAX_INDEX_FLAGS` raises
    `LabelConfigTooLarge` naming the limit, before the rest of it is read.
    """
    if not config:
        return {}
    if not isinstance(config, str):
        raise LabelConfigError(f"label config must be a string, got {type(config).__name__}")
    if len(config) > MAX_CHARS:
        raise LabelConfigTooLarge("characters", MAX_CHARS)
    objects: dict[str, dict[str, Any]] = {}
    controls: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, dict]] = {}
    index_flags: dict[str, None] = {}  # distinct, in order of first appearance (the order of `regex`'s keys)
    ancestors: list[ET.Element] = []
    tags = 0
    for event, tag in _events(config):
        if event == "end":
            ancestors.pop()
            continue
        tags += 1
        if tags > MAX_TAGS:
            raise LabelConfigTooLarge("tags", MAX_TAGS)
        if len(ancestors) >= MAX_DEPTH:
            raise LabelConfigTooLarge("levels of nesting", MAX_DEPTH)
        if "indexFlag" in tag.attrib:
            index_flags[tag.attrib["indexFlag"]] = None
            if len(index_flags) > MAX_INDEX_FLAGS:
                raise LabelConfigTooLarge("distinct indexFlag values", MAX_INDEX_FLAGS)
        if _is_control(tag):
            info: dict[str, Any] = {"type": tag.tag, "to_name": tag.attrib["toName"].split(",")}
            if index_flags:
                # "\0" cannot occur in XML, so a flag matches inside one to_name, never across two
                joined = "\0".join(info["to_name"])
                for flag in index_flags:
                    if flag in joined:
                        info.setdefault("regex", {})[flag] = ".*"
            if tag.get("perRegion") == "true":
                for attr, kind in (("whenTagName", "tag"), ("whenLabelValue", "label"), ("whenChoiceValue", "choice")):
                    if tag.get(attr):
                        info["conditionals"] = {"type": kind, "name": tag.get(attr)}
                        break
            if _VARIABLE.fullmatch(tag.get("value", "")) or tag.get("apiUrl"):
                info["dynamic_labels"] = True
            controls[tag.attrib["name"]] = info
        elif _is_object(tag):
            obj: dict[str, Any] = {"type": tag.tag, "valueType": tag.get("valueType")}
            if tag.get("value"):
                obj["value"] = tag.attrib["value"].lstrip("$")
            else:
                obj["valueList"] = tag.attrib["valueList"].lstrip("$")
            objects[tag.attrib["name"]] = obj
        if tag.tag in LABEL_TAGS:
            # the nearest ancestor named like a control seen so far (at most MAX_DEPTH steps)
            owner = next((a for a in reversed(ancestors) if a.get("name") in controls), None)
            if owner is not None:
                value = tag.get("alias") or tag.get("value") or tag.get("valueList")
                if value:
                    labels.setdefault(owner.attrib["name"], {})[value] = dict(tag.attrib)
        ancestors.append(tag)
    for name, info in controls.items():
        info["inputs"] = [objects[n] for n in info["to_name"] if n in objects]
        attrs = labels.get(name, {})
        info["labels"] = list(attrs)
        info["labels_attrs"] = attrs
    return controls


def _events(config: str) -> Iterator[tuple[str, ET.Element]]:
    """The parser's ("start" | "end", element) events, fed in chunks so that a limit stops the parse early."""
    parser: ET.XMLPullParser = ET.XMLPullParser(events=("start", "end"))
    try:
        for offset in range(0, len(config), _CHUNK):
            parser.feed(config[offset : offset + _CHUNK])
            yield from cast("Iterator[tuple[str, ET.Element]]", parser.read_events())
        parser.close()
        yield from cast("Iterator[tuple[str, ET.Element]]", parser.read_events())
    except ET.ParseError as exc:
        raise LabelConfigError(f"label config is not valid XML: {exc}") from None


class _ParseCache:
    """`parse_config`'s results by config string, least recently used first out, bounded by count and by the
    configs' total size: a config comes from requests, and 64 distinct configs of `MAX_CHARS` each would
    otherwise keep 64 MiB of text (and their parses) alive."""

    def __init__(self, max_entries: int = 64, max_chars: int = 8 * MAX_CHARS) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[str, dict] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __call__(self, config: str) -> dict:
        with self._lock:
            parsed = self._entries.get(config)
            if parsed is not None:
                self._entries.move_to_end(config)
                return parsed
        parsed = parse_config(config)  # outside the lock: a long parse must not hold up cached lookups
        with self._lock:
            if config not in self._entries:
                self._entries[config] = parsed
                self._chars += len(config)
            while self._entries and (len(self._entries) > self.max_entries or self._chars > self.max_chars):
                old, _ = self._entries.popitem(last=False)
                self._chars -= len(old)
        return parsed

    @property
    def chars(self) -> int:
        return self._chars

    def __len__(self) -> int:
        return len(self._entries)

    def cache_clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0


_parse_cached = _ParseCache()


def parse_config_cached(config: str | None) -> dict:
    """`parse_config` memoised by the config string. Treat the result as read-only."""
    if not config:
        return {}
    return _parse_cached(config)


def _matches(kind: str, wanted: str | Iterable[str] | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        wanted = (wanted,)
    kind_l = kind.lower()
    return any(kind_l == w.lower() for w in wanted)


def get_first_tag_occurence(
    parsed: dict[str, dict[str, Any]],
    control_type: str | tuple | None,
    object_type: str | tuple | None,
    name_filter: Callable[[str], bool] | None = None,
    to_name_filter: Callable[[str], bool] | None = None,
) -> tuple[str, str, str]:
    """(from_name, to_name, value) of the first control of `control_type` bound to an object of `object_type`.

    Types compare case-insensitively; `value` is the object's data key (`$` stripped).
    Raises ValueError when nothing matches.
    """
    for from_name, info in parsed.items():
        if not _matches(info["type"], control_type):
            continue
        if name_filter is not None and not name_filter(from_name):
            continue
        for to_name, obj in zip(_bound_names(info), info["inputs"], strict=True):
            if not _matches(obj["type"], object_type):
                continue
            if to_name_filter is not None and not to_name_filter(to_name):
                continue
            return from_name, to_name, obj.get("value") or obj.get("valueList")
    raise ValueError(
        f"no control tag of type {control_type!r} bound to an object of type {object_type!r} in the label config"
    )


def _bound_names(info: dict) -> list[str]:
    """The to_names that `inputs` describe, in order (to_names naming no object tag are dropped by the parser)."""
    names = info["to_name"]
    if len(names) == len(info["inputs"]):
        return names
    return names[: len(info["inputs"])]


def _beyond_stand_in(kind: str, name: str) -> AttributeError:
    """What the stand-ins raise for anything label-studio-sdk's objects have and they do not: name the extra."""
    if name.startswith("_"):  # copy, pickle and hasattr probes of dunders: a plain AttributeError
        return AttributeError(name)
    return AttributeError(
        f"lsml's stand-in {kind} has no {name!r}; label-studio-sdk's {kind} has more: "
        "pip install 'lsml[sdk]' (then self.label_interface is the SDK's)"
    )


class ControlTag:
    """A control tag of a parsed config (the attributes label-studio-sdk's control objects are used for most)."""

    def __init__(self, name: str, info: dict) -> None:
        self.name = name
        self.tag = info["type"]
        self.to_name = list(info["to_name"])
        self.inputs = info["inputs"]
        self.labels = list(info["labels"])
        self.labels_attrs = info["labels_attrs"]

    def __repr__(self) -> str:
        return f"ControlTag({self.tag} name={self.name!r} to_name={self.to_name!r})"

    def __getattr__(self, name: str) -> Any:
        raise _beyond_stand_in("ControlTag", name)


class ObjectTag:
    """An object (input) tag: its name, type and the task data key it reads (`value`, `$` stripped)."""

    def __init__(self, name: str, info: dict) -> None:
        self.name = name
        self.tag = info["type"]
        self.value = info.get("value") or info.get("valueList")
        self.value_type = info.get("valueType")

    def __repr__(self) -> str:
        return f"ObjectTag({self.tag} name={self.name!r} value={self.value!r})"

    def __getattr__(self, name: str) -> Any:
        raise _beyond_stand_in("ObjectTag", name)


class LabelInterface:
    """A small stand-in for label-studio-sdk's `LabelInterface` over `parse_config`'s result.

    Covers what reference-style models call: `get_first_tag_occurence`,
    `get_control`/`get_output`, `get_object`, `get_tag`, `controls`, `objects`.
    Anything else raises an AttributeError naming the `lsml[sdk]` extra, which makes
    `self.label_interface` the SDK's real one (`lsml.sdk`).
    """

    def __init__(self, config: str | None = None, parsed: dict | None = None) -> None:
        self.config = config
        self.parsed = parsed if parsed is not None else parse_config_cached(config)
        self._objects = {
            o_name: obj
            for info in self.parsed.values()
            for o_name, obj in zip(_bound_names(info), info["inputs"], strict=True)
        }

    @property
    def controls(self) -> list[ControlTag]:
        return [ControlTag(name, info) for name, info in self.parsed.items()]

    @property
    def objects(self) -> list[ObjectTag]:
        return [ObjectTag(name, info) for name, info in self._objects.items()]

    def get_control(self, name: str | None = None) -> ControlTag:
        return ControlTag(*_one(self.parsed, name, "control"))

    get_output = get_control

    def get_object(self, name: str | None = None) -> ObjectTag:
        return ObjectTag(*_one(self._objects, name, "object"))

    def get_tag(self, name: str) -> ControlTag | ObjectTag:
        """The control or object tag called `name` (controls first, like the SDK)."""
        if name in self.parsed:
            return ControlTag(name, self.parsed[name])
        if name in self._objects:
            return ObjectTag(name, self._objects[name])
        raise KeyError(f"no tag named {name!r} in the label config")

    def get_first_tag_occurence(
        self,
        control_type: str | tuple | None,
        object_type: str | tuple | None,
        name_filter: Callable[[str], bool] | None = None,
        to_name_filter: Callable[[str], bool] | None = None,
    ) -> tuple[str, str, str]:
        """(from_name, to_name, value) of the first `control_type` control over an `object_type` object."""
        return get_first_tag_occurence(self.parsed, control_type, object_type, name_filter, to_name_filter)

    def __getattr__(self, name: str) -> Any:
        raise _beyond_stand_in("LabelInterface", name)


def _one(tags: dict, name: str | None, kind: str) -> tuple[str, dict]:
    """`(name, info)` of the named tag, or of the only one when no name is given."""
    if name is None:
        if len(tags) != 1:
            raise ValueError(f"the label config has {len(tags)} {kind} tags: name one")
        name = next(iter(tags))
    if name not in tags:
        raise KeyError(f"no {kind} tag named {name!r}")
    return name, tags[name]


def get_single_tag_keys(parsed: dict[str, dict[str, Any]], control_type: str, object_type: str) -> tuple:
    """(from_name, to_name, value, labels) of a config with exactly one control of `control_type` over
    one object of `object_type` (label-studio-ml-backend's helper); LabelConfigError naming what differs."""
    if len(parsed) != 1:
        raise LabelConfigError(f"the label config must have exactly one control tag, it has {len(parsed)}")
    from_name, info = next(iter(parsed.items()))
    if info["type"] != control_type:
        raise LabelConfigError(f"the label config has <{info['type']}> where this model expects <{control_type}>")
    if len(info["to_name"]) != 1 or len(info["inputs"]) != 1:
        raise LabelConfigError(f"<{control_type} name={from_name!r}> must be bound to exactly one object tag")
    if info["inputs"][0]["type"] != object_type:
        raise LabelConfigError(
            f"<{control_type} name={from_name!r}> is bound to <{info['inputs'][0]['type']}>, not <{object_type}>"
        )
    return from_name, info["to_name"][0], info["inputs"][0]["value"], info["labels"]


def get_first_tag_keys(
    parsed: dict[str, dict[str, Any]], control_type: str, object_type: str
) -> tuple[str | None, dict | None]:
    """(from_name, info) of the first `control_type` control over an `object_type` object (exact
    types), else (None, None): label-studio-ml-backend's helper over `parse_config`'s result."""
    for from_name, info in parsed.items():
        if info["type"] == control_type and any(obj["type"] == object_type for obj in info["inputs"]):
            return from_name, info
    return None, None
