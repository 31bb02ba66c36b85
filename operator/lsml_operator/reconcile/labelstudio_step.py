"""Step 3 of a pass: the Label Studio registration, and what it found.

With ``spec.labelStudio``: register the backend in each listed project once the server is
available (adopting an existing backend of the same URL), re-verify on full passes or when
the inputs' fingerprint changed, and retry failures with backoff. Without it: delete the
registrations status still records (the user removed the wiring), with the Label Studio URL,
token Secret and backend URL the operator recorded on the MLBackend before it registered
(``registration_record``; never status's, which a status patch could point anywhere). Either
way it returns a ``LabelStudioResult`` (the condition, ``status.labelStudio``, the events) and
writes no status.
"""

from __future__ import annotations

from typing import Any

from .. import metrics, registration
from ..builders import Spec
from ..keys import key_of
from ..kube import Kube
from ..settings import OperatorSettings
from ..status import LABEL_STUDIO_REGISTERED, Check
from .backoff import Backoff
from .events import NORMAL, WARNING, Event
from .observed import LabelStudioResult
from .registration_record import RegistrationRecord, RegistrationRecords


def _key_error_text(exc: KeyError) -> str:
    """A KeyError's message without the quotes ``str(KeyError)`` adds."""
    return str(exc).strip("'\"")


def _previous_check(old: dict[str, Any]) -> Check | None:
    prev = next((c for c in old.get("conditions") or [] if c.get("type") == LABEL_STUDIO_REGISTERED), None)
    return Check(prev.get("status") == "True", prev.get("reason", ""), prev.get("message", "")) if prev else None


class LabelStudioStep:
    """Owns the Label Studio side of a pass (and of deletion); its backoff is shared with the timer's tick_due."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        ls_factory: registration.ClientFactory,
        backoff: Backoff,
        records: RegistrationRecords,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.ls_factory = ls_factory
        self.backoff = backoff
        self.records = records

    def _token(self, namespace: str, name: str, key: str) -> tuple[str, str]:
        """(token, resourceVersion) of a token Secret's key, as `clean_token` takes it; KeyError (the value never in
        its message) when the key is missing, empty or holds no usable token."""
        from lsml.labelstudio import clean_token  # as registration does: the client loads on first use

        raw, version = self.kube.secret_value(namespace, name, key)
        try:
            token = clean_token(raw)
        except ValueError as exc:
            raise KeyError(f"Secret {namespace}/{name} key {key!r}: {exc}") from None
        if token is None:
            raise KeyError(f"Secret {namespace}/{name} key {key!r} is empty")
        return token, version

    def target(self, spec: Spec) -> registration.Target:
        """Registration inputs, with the token and basic-auth credentials read from their Secrets."""
        ls = spec.label_studio_spec
        if ls is None:
            raise ValueError(f"{spec.namespace}/{spec.name} has no spec.labelStudio to register in")
        tok = {"name": ls.api_token_secret_ref.name, "key": ls.api_token_secret_ref.key}
        token, tok_rv = self._token(spec.namespace, tok["name"], tok["key"])
        basic = None
        versions = [tok_rv]
        ba = spec.raw.get("basicAuth")
        if ba:
            user, rv = self.kube.secret_value(spec.namespace, ba["secretName"], ba["usernameKey"])
            password, _ = self.kube.secret_value(spec.namespace, ba["secretName"], ba["passwordKey"])
            basic = (user, password)
            versions.append(rv)
        return registration.Target(
            label_studio_url=ls.url.rstrip("/"),
            backend_url=spec.backend_url,
            projects=tuple(ls.projects),
            title=ls.title or f"{spec.name} ({spec.namespace})",
            description=ls.description or f"lsml MLBackend {spec.namespace}/{spec.name}",
            interactive=ls.interactive,
            timeout=float(ls.timeout),
            token=token,
            basic_auth=basic,
            secret_versions=tuple(versions),
        )

    def recorded_target(self, spec: Spec, ls_status: dict[str, Any]) -> registration.Target | None:
        """A deregistration target once spec.labelStudio is gone: Label Studio's URL, the token Secret and
        the backend URL from the operator's own record (``registration_record``), the ids and projects
        from status. None when status records no backend or the operator recorded no registration;
        KeyError when the Secret or its key is gone."""
        backends = ls_status.get("backends") or []
        record = self.records.recorded(spec.body)
        if not backends or record is None:
            return None
        token, _ = self._token(spec.namespace, record.secret_name, record.secret_key)
        return registration.Target(
            label_studio_url=record.url,
            backend_url=record.backend_url,
            projects=tuple(sorted({int(b["project"]) for b in backends if b.get("project") is not None})),
            title="",
            description="",
            interactive=False,
            timeout=self.settings.label_studio_timeout,
            token=token,
        )

    def run(
        self, spec: Spec, old: dict[str, Any], *, server_ok: bool, full: bool, foreign: str = ""
    ) -> LabelStudioResult:
        """``foreign``: the objects of a child's name this MLBackend does not control (ChildrenOwned's message),
        empty when there are none."""
        ls_status = dict(old.get("labelStudio") or {})
        if spec.label_studio is None:
            return self._unwire(spec, ls_status)
        if foreign:
            return self._withdraw(spec, ls_status, foreign)
        return self._register(spec, old, ls_status, server_ok=server_ok, full=full)

    def _withdraw(self, spec: Spec, ls_status: dict[str, Any], foreign: str) -> LabelStudioResult:
        """No registration while a child's name is someone else's: Label Studio would send the Basic credentials,
        task data and `/setup` tokens to whatever answers at the Service's name. Registrations already made are
        deleted (the next pass after the name is free registers again)."""
        check = Check(False, "ForeignObject", f"not registered while a child's name is taken: {foreign}")
        backends = ls_status.get("backends") or []
        if not backends:
            return LabelStudioResult(check, ls_status)
        key = key_of(spec.body)
        try:
            target = self.target(spec)
        except KeyError as exc:
            return LabelStudioResult(Check(False, "SecretMissing", _key_error_text(exc)), ls_status)
        if not self.backoff.allowed(key):
            return LabelStudioResult(check, ls_status)
        done, events = self._deregister(key, target, backends, "a child's name is taken")
        return LabelStudioResult(check, {"url": target.label_studio_url} if done else ls_status, events)

    def _deregister(
        self, key: Any, target: registration.Target, backends: list[dict[str, Any]], why: str
    ) -> tuple[bool, list[Event]]:
        """Delete the recorded registrations; whether it succeeded, and the events (one Warning per outage: the
        backoff retries, the first failure says so)."""
        outcome = registration.deregister(target, backends, self.ls_factory)
        if outcome.error:
            delay = self.backoff.failed(key)
            if self.backoff.failures(key) > 1:
                return False, []
            ids = [b.get("id") for b in backends]
            message = f"{why}; deleting ML backends {ids}: {outcome.error} (retrying in {delay:.0f}s)"
            return False, [Event(WARNING, "DeregistrationFailed", message)]
        self.backoff.succeeded(key)
        return True, [
            Event(NORMAL, "Deregistered", f"deleted Label Studio ML backend {rid}: {why}") for rid in outcome.removed
        ]

    def _register(
        self, spec: Spec, old: dict[str, Any], ls_status: dict[str, Any], *, server_ok: bool, full: bool
    ) -> LabelStudioResult:
        key = key_of(spec.body)
        recorded = list(ls_status.get("backends") or [])
        prev = _previous_check(old)
        if not server_ok and not (prev and prev.ok):
            return LabelStudioResult(
                Check(False, "WaitingForServer", "registration waits until the server Deployment is available"),
                ls_status,
            )
        try:
            target = self.target(spec)
        except KeyError as exc:
            return LabelStudioResult(Check(False, "SecretMissing", _key_error_text(exc)), ls_status)
        fingerprint = target.fingerprint()
        due = full or fingerprint != ls_status.get("registrationHash") or not (prev and prev.ok)
        if not due and prev is not None:
            return LabelStudioResult(prev, ls_status)
        if not server_ok:
            return LabelStudioResult(
                Check(
                    False, "WaitingForServer", "the spec changed; re-registration waits for the server to be available"
                ),
                ls_status,
            )
        if not self.backoff.allowed(key):
            return LabelStudioResult(prev or Check(False, "RetryPending", "waiting to retry Label Studio"), ls_status)
        # before any create: what removing spec.labelStudio (or deleting the resource after that) needs
        # once the spec no longer says it, where a status patch cannot change it (registration_record)
        tok = spec.token_secret_ref or {}
        self.records.record(
            spec.body, RegistrationRecord(target.label_studio_url, tok["name"], tok["key"], target.backend_url)
        )
        outcome = registration.sync(target, recorded, self.ls_factory)
        # shown to users; deregistration reads the record above, never these
        ls_status = {
            "backends": outcome.backends,
            "url": target.label_studio_url,
            "apiTokenSecretRef": spec.token_secret_ref,
        }
        events: list[Event] = []
        if outcome.error:
            delay = self.backoff.failed(key)
            reason = "LabelStudioUnreachable" if outcome.unreachable else "LabelStudioRefused"
            metrics.REGISTRATION_FAILURES.labels(reason).inc()
            if recorded != outcome.backends or prev is None or prev.message != outcome.error:
                events.append(Event(WARNING, reason, f"{outcome.error} (retrying in {delay:.0f}s)"))
            ls_status["registrationHash"] = ""
            return LabelStudioResult(Check(False, reason, outcome.error), ls_status, events)
        self.backoff.succeeded(key)
        ls_status["registrationHash"] = fingerprint
        events += [
            Event(NORMAL, "Registered", f"created Label Studio ML backend {rid} for {target.backend_url}")
            for rid in outcome.created
        ]
        events += [Event(NORMAL, "Deregistered", f"deleted Label Studio ML backend {rid}") for rid in outcome.removed]
        ids = ", ".join(f"project {b['project']}: {b['id']}" for b in outcome.backends)
        return LabelStudioResult(Check(True, "Registered", f"registered in Label Studio ({ids})"), ls_status, events)

    def _unwire(self, spec: Spec, ls_status: dict[str, Any]) -> LabelStudioResult:
        """spec.labelStudio was removed: delete the recorded registrations (the user removed the wiring).

        Uses the Label Studio URL, token Secret and backend URL the operator recorded when it registered.
        On failure the records stay in status and the timer retries with backoff (one Warning event per
        outage, not per attempt).
        """
        backends = ls_status.get("backends") or []
        if not backends:
            return LabelStudioResult(None, {})
        key = key_of(spec.body)
        ids = [b.get("id") for b in backends]
        try:
            target = self.recorded_target(spec, ls_status)
        except KeyError as exc:
            return LabelStudioResult(
                None,
                {},
                [
                    Event(
                        WARNING,
                        "RegistrationsLeft",
                        (
                            f"spec.labelStudio was removed but {_key_error_text(exc)}: Label Studio ML backends {ids} were not deleted"
                        ),
                    )
                ],
            )
        if target is None:
            return LabelStudioResult(
                None,
                {},
                [
                    Event(
                        WARNING,
                        "RegistrationsLeft",
                        (
                            f"spec.labelStudio was removed: Label Studio ML backends {ids} were not deleted "
                            "(the operator recorded no registration on this MLBackend: "
                            "annotation lsml.dev/label-studio; status is not trusted with where a token goes)"
                        ),
                    )
                ],
            )
        if not self.backoff.allowed(key):
            return LabelStudioResult(None, ls_status)
        done, events = self._deregister(key, target, backends, "spec.labelStudio was removed")
        return LabelStudioResult(None, {} if done else ls_status, events)

    def finalize(self, mlb: dict[str, Any]) -> tuple[registration.Outcome | None, list[Event]]:
        """Delete the Label Studio registrations of a resource being deleted (children go by garbage collection)."""
        spec = Spec(mlb)
        ls_status = (mlb.get("status") or {}).get("labelStudio") or {}
        recorded = list(ls_status.get("backends") or [])
        if spec.label_studio is None:
            # removed from the spec and not yet deregistered (Label Studio was down): the record knows where
            target = self.recorded_target(spec, ls_status)
            if target is None:
                return None, []
        else:
            target = self.target(spec)
        outcome = registration.deregister(target, recorded, self.ls_factory)
        if outcome.error:
            return outcome, []
        return outcome, [
            Event(NORMAL, "Deregistered", f"deleted Label Studio ML backend {rid}") for rid in outcome.removed
        ]
