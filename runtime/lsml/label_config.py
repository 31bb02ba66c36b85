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
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

LABEL_TAGS = frozenset({"Label", "Choice", "Relation"})
# The data key Label Studio uses for a task imported without a key (label-studio-ml-backend's `utils` name).
DATA_UNDEFINED_NAME = "$undefined$"
NOT_CONTROL_TAGS = frozenset({"Filter"})
_VARIABLE = re.compile(r"^\$[A-Za-z_]+$")


class LabelConfigError(ValueError):
    """The label config is not valid XML (or not a label config)."""


def _is_control(tag: ET.Element) -> bool:
    return bool(tag.get("name")) and bool(tag.get("toName")) and tag.tag not in NOT_CONTROL_TAGS


def _is_object(tag: ET.Element) -> bool:
    return bool(tag.get("name")) and bool(tag.get("value") or tag.get("valueList"))


def parse_config(config: str | None) -> dict[str, dict[str, Any]]:
    """Controls of a label config keyed by their name; `{}` for an empty config."""
    if not config:
        return {}
    if not isinstance(config, str):
        raise LabelConfigError(f"label config must be a string, got {type(config).__name__}")
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise LabelConfigError(f"label config is not valid XML: {exc}") from None
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
            parent = parents.get(tag)
            while parent is not None and parent.get("name") not in controls:
                parent = parents.get(parent)
            if parent is not None:
                value = tag.get("alias") or tag.get("value") or tag.get("valueList")
                if value:
                    labels.setdefault(parent.attrib["name"], {})[value] = dict(tag.attrib)
    for name, info in controls.items():
        info["inputs"] = [objects[n] for n in info["to_name"] if n in objects]
        attrs = labels.get(name, {})
        info["labels"] = list(attrs)
        info["labels_attrs"] = attrs
    return controls


@lru_cache(maxsize=64)
def _parse_cached(config: str) -> dict:
    return parse_config(config)


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
