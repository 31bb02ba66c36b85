"""Pod annotations: the user's `spec.server.podAnnotations` cannot set the operator's keys or loosen the sandbox.

Why: annotations are not only read by tools. The kubelet still honours AppArmor's
beta annotation (`container.apparmor.security.beta.kubernetes.io/<container>:
unconfined`), container runtimes read their own (CRI-O's `io.kubernetes.cri-o.*`,
containerd's, Kata's `io.katacontainers.*`, crun's `run.oci.*`), and the operator's
`lsml.dev/config-hash` is what rolls the pods when a password or the config changes
(a spec that pinned it would keep old passwords in running pods). Pods run with the
operator's restricted security context whatever the spec says, so these keys are
the operator's alone:

* the CRD refuses them at admission (a CEL rule on `podAnnotations` with the same
  pattern, `RESERVED_POD_ANNOTATION`, so `kubectl apply` says why);
* the builders drop them and put the operator's own last, for an object stored
  before that rule existed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: A pod annotation key `spec.server.podAnnotations` may not set (RE2 and Python `re` alike, no backslash,
#: so the CRD's CEL rule embeds it verbatim; tests/operator/test_crd.py checks that they are the same).
RESERVED_POD_ANNOTATION = (
    "^(([^/]*[.])?lsml[.]dev/"
    "|container[.]apparmor[.]security[.]beta[.]kubernetes[.]io/"
    "|(container[.])?seccomp[.]security[.]alpha[.]kubernetes[.]io/"
    "|io[.]kubernetes[.]cri-o[.]"
    "|io[.]kubernetes[.]cri[.]"
    "|io[.]containerd[.]"
    "|io[.]katacontainers[.]"
    "|run[.]oci[.])"
)
_RESERVED = re.compile(RESERVED_POD_ANNOTATION)


def is_reserved(key: str) -> bool:
    """True for a key only the operator may set on a pod (its own `lsml.dev` keys, sandbox settings)."""
    return _RESERVED.match(key) is not None


def merged(requested: Mapping[str, str] | None, own: Mapping[str, str]) -> dict[str, str]:
    """The pod template's annotations: the requested ones minus reserved keys, then the operator's `own`."""
    kept = {k: v for k, v in (requested or {}).items() if not is_reserved(k)}
    return {**kept, **own}
