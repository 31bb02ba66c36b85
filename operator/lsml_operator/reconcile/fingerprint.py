"""Whether a live child still holds what the operator's apply set, without asking the API server.

Server-side apply records, in the child's ``managedFields`` entry of manager ``lsml-operator`` (operation
``Apply``), exactly the fields our last apply set. When anyone else changes one of them (``kubectl edit``,
another controller's update, a forced apply), the API server moves that field to the other manager; a
field removed by hand leaves our set too. So the live object projected onto our entry (``owned``) is, as
long as nobody touched our fields, exactly the object we applied, and it differs as soon as anybody did.

``of_live(obj)`` digests that projection; ``of_desired(child)`` digests a desired child the same way (identity
fields dropped, as managedFields never lists them). A restarted operator compares the two for each child
its watches listed (or it read), and applies only those that differ: nothing changed, nothing written. Within one process
the digest of our own apply's answer is kept too (``ChildCache.applied``), so a value the API server
normalises differently from the builder costs one apply, not one per pass.

Normalised on both sides, because the API server stores some values differently from how they were sent:
quantities in canonical form (``0.5`` CPU -> ``500m``), zero values of ``omitempty`` fields dropped
(``readOnly: false``; both sides map an absent-but-owned field and a zero value to the same marker), and
what it adds to a StatefulSet's claim templates (``_claim_template``). tests/operator/test_fingerprint_cluster.py
checks every child kind against the real API server.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import FIELD_MANAGER, jsonio

ABSENT = "\x00zero"  # an owned field the API server does not store (a zero value of an omitempty field)
_QUANTITY_KEYS = {"requests", "limits", "capacity"}
_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def quantity(value: Any) -> Any:
    """A Kubernetes quantity as a canonical string of its value (``"0.5"`` and ``"500m"`` alike); other values as they are."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    m = _QUANTITY.match(str(value))
    if not m:
        return value
    try:
        number = Decimal(m.group(1)) * _SUFFIXES[m.group(2)]
    except InvalidOperation:
        return value
    return f"q:{number.normalize():f}"


def _zero(value: Any) -> bool:
    return value is False or value == 0 and not isinstance(value, bool) or value in ("", {}, [])


def _claim_template(template: Any) -> Any:
    """A StatefulSet's claim template without what the API server adds to it: the list is atomic (our managedFields
    own it whole), and the server stores each template with ``status.phase`` and the default ``volumeMode``.
    Safe to ignore: volumeClaimTemplates cannot change once the StatefulSet exists."""
    if not isinstance(template, dict):
        return template
    out = {k: v for k, v in template.items() if k != "status"}
    spec = out.get("spec")
    if isinstance(spec, dict) and spec.get("volumeMode") == "Filesystem":
        out["spec"] = {k: v for k, v in spec.items() if k != "volumeMode"}
    return out


def _canon(value: Any, key: str = "", in_quantities: bool = False) -> Any:
    """Zero values and absent-but-owned fields as ``ABSENT``, quantities canonical (under requests/limits/capacity)."""
    if key == "volumeClaimTemplates" and isinstance(value, list):
        value = [_claim_template(t) for t in value]
    if isinstance(value, dict):
        out = {k: _canon(v, k, key in _QUANTITY_KEYS) for k, v in value.items() if v is not None}
        return out or ABSENT
    if isinstance(value, list):
        return [_canon(v) for v in value] or ABSENT
    if value == ABSENT or _zero(value):
        return ABSENT
    return quantity(value) if in_quantities or key == "storage" else value


def content_digest(value: Any) -> str:
    """A digest of JSON-like ``value`` equal for equal content, whatever the order of its maps' keys.

    In memory only: a restarted operator compares digests it made itself."""
    return hashlib.sha256(jsonio.dumps(value, sort_keys=True)).hexdigest()[:32]


def owned_fields(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The fieldsV1 of our ``Apply`` entry in ``managedFields``; None when our apply owns nothing here."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            fields = entry.get("fieldsV1")
            return fields if isinstance(fields, dict) else None
    return None


@functools.lru_cache(maxsize=4096)
def _selector(selector: str) -> tuple[str, Any]:
    """A list item's selector parsed once (``k:{...}`` or ``v:...``): a Deployment's has dozens, met on every event.

    Bounded: the selectors are those of the operator's own children (a few hundred distinct), so it stays full."""
    kind, _, raw = selector.partition(":")
    try:
        return kind, json.loads(raw)
    except ValueError:
        return "", None


def _item_matches(item: Any, selector: str) -> bool:
    kind, wanted = _selector(selector)
    if kind == "k":
        return isinstance(item, dict) and isinstance(wanted, dict) and all(item.get(k) == v for k, v in wanted.items())
    if kind == "v":
        return bool(item == wanted)
    return False


def project(value: Any, fields: dict[str, Any]) -> Any:
    """``value`` reduced to the fields of a fieldsV1 set (``f:<name>``, list items ``k:{...}``, ``v:...``, ``i:N``).

    An owned field the live object lacks becomes ``ABSENT``; a leaf (``{}``) keeps the whole value (a scalar,
    or an atomic map or list)."""
    if not fields or set(fields) == {"."}:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for sel, sub in fields.items():
            if sel.startswith("f:"):
                name = sel[2:]
                out[name] = project(value[name], sub) if name in value else ABSENT
        return out
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            for sel, sub in fields.items():
                if sel == f"i:{index}" or (sel[:2] in ("k:", "v:") and _item_matches(item, sel)):
                    items.append(project(item, sub))
                    break
        return items
    return value


def of_live(obj: dict[str, Any]) -> str | None:
    """The digest of what our last apply set that is still ours and as we set it; None without our entry."""
    fields = owned_fields(obj)
    if fields is None:
        return None
    return content_digest(_canon(project(obj, fields)))


def live_source(obj: dict[str, Any]) -> bytes | None:
    """A digest of all that ``of_live`` reads of ``obj``; None when that is not known to exclude status.

    Equal sources give equal fingerprints, so a child's fingerprint is made again only when its source moved:
    most watch events of a child are its controller's status writes, which move only ``status``,
    ``resourceVersion`` and the controller's own ``managedFields`` entry, none of them read by ``of_live``, while
    projecting a Deployment costs about ten times this digest. Bytes in whatever key order the API server sent:
    a different order for the same content only makes the fingerprint again."""
    fields = owned_fields(obj)
    if fields is None or "f:status" in fields:
        return None
    meta = obj.get("metadata") or {}
    owned_meta = fields.get("f:metadata") or {}
    if "f:resourceVersion" in owned_meta or "f:managedFields" in owned_meta:
        return None  # no apply owns these; should one ever, the digest below would miss what it reads
    content = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    content["metadata"] = {k: v for k, v in meta.items() if k not in ("resourceVersion", "managedFields")}
    return hashlib.blake2b(jsonio.dumps([fields, content]), digest_size=16).digest()


def of_desired(child: dict[str, Any]) -> str:
    """The digest ``of_live`` gives a child on which our apply of ``child`` is in force and untouched."""
    body = {k: v for k, v in child.items() if k not in ("apiVersion", "kind", "status")}
    meta = {k: v for k, v in (child.get("metadata") or {}).items() if k not in ("name", "namespace")}
    body["metadata"] = meta
    return content_digest(_canon(body))
