"""Request bodies and query strings: one pydantic model each, which both checks a request and writes its
schema in /openapi.json (`server/openapi.py`), so the two cannot drift apart.

Models are strict (JSON's types: `true` is no integer, `"3"` no number) except that an integral float
is its integer (JSON Schema's rule: 3.0 is the integer 3). Label Studio's bodies carry more fields than
lsml reads: the models keep them (`extra="allow"`), except /prelabel, which is lsml's own and refuses
unknown fields. `parse` turns the first error into the API's `ApiError`: the route's code (`missing_tasks`,
`invalid_project`, ...) and a message naming the field's path and what was wrong, never the value (it may
be a token).

/predict checks the envelope only: `tasks` is a list of objects, each task's content is the model's
business (bench/README.md, "Request validation", has the cost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    InstanceOf,
    Tag,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from lsml import credentials
from lsml.label_config import LabelConfigError, LabelConfigTooLarge, parse_config_cached
from lsml.model import MAX_PROJECT_ID, PROJECT_NAME_PATTERN, project_key
from lsml.prelabel import (
    BATCH_SIZE_DEFAULT,
    BATCH_SIZE_MAX,
    LS_PROJECT_PATTERN,
    MAX_CONCURRENT_MAX,
    MODES,
    VERSION_NAME_PATTERN,
)
from lsml.server.errors import ApiError


def _integral(value: Any) -> Any:
    """JSON's 4.0 is the integer 4 (as JSON Schema says): what a client's serializer wrote is not refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def checked_label_config(value: str | None) -> str | None:
    """`value` (None for none or ""), parsed once so a broken config is a 400 now, not a failed background
    build later; raises `LabelConfigError`."""
    if not value:
        return None
    parse_config_cached(value)
    return value


def label_config_code(exc: LabelConfigError) -> str:
    """The API error code of a refused label config: `label_config_too_large` past a limit of
    `lsml.label_config` (the message names it), `invalid_label_config` otherwise."""
    return "label_config_too_large" if isinstance(exc, LabelConfigTooLarge) else "invalid_label_config"


_LABEL_CONFIG_CODES = frozenset({"invalid_label_config", "label_config_too_large"})


def _label_config(value: str | None) -> str | None:
    try:
        return checked_label_config(value)
    except LabelConfigError as exc:
        raise PydanticCustomError(label_config_code(exc), "{reason}", {"reason": str(exc)}) from None


def _json_form(value: Any) -> str:
    """Which member of a union a value is for (the unions below are tagged by JSON type), so an error
    speaks of that member only, not of every member tried."""
    if value is None:
        return "as-null"
    if value == "" and isinstance(value, str):
        return "as-empty"
    if isinstance(value, dict):
        return "as-object"
    if isinstance(value, (int, float)):
        return "as-integer"
    return "as-string" if isinstance(value, str) else "as-other"  # "as-other" is no member: an error naming the forms


#: A JSON object, checked for its type only: not copied, its content not walked (a /predict task is the model's).
_Object = InstanceOf[dict]
_Integer = Annotated[int, BeforeValidator(_integral)]
_NOT_BLANK = r"\S"
# bounds go on the int itself (before the validator): after it, pydantic would publish them as `ge`/`le`
_ProjectNumber = Annotated[int, Field(ge=0, le=MAX_PROJECT_ID), BeforeValidator(_integral)]
_ProjectName = Annotated[str, Field(pattern=PROJECT_NAME_PATTERN)]
if TYPE_CHECKING:  # what the validators leave: `project_key`'s string
    ProjectId: TypeAlias = str
    Project: TypeAlias = str
    OptionalProject: TypeAlias = str
else:
    #: A project id, or Label Studio's "<id>.<created_at>" name: filed under "<id>" (`lsml.model.project_key`).
    ProjectId = Annotated[
        Annotated[_ProjectName, Tag("as-string")] | Annotated[_ProjectNumber, Tag("as-integer")],
        Discriminator(_json_form),
        AfterValidator(project_key),
        Field(description="Project id, or Label Studio's '<id>.<created_at>'"),
    ]
    #: A project, or "" for the default one.
    Project = Annotated[
        Annotated[_ProjectName, Tag("as-string")]
        | Annotated[_ProjectNumber, Tag("as-integer")]
        | Annotated[Literal[""], Tag("as-empty")],
        Discriminator(_json_form),
        AfterValidator(project_key),
        Field(description="Project id, or Label Studio's '<id>.<created_at>'; '': the default project"),
    ]
    #: A project, or none (null, absent, ""): the default project.
    OptionalProject = Annotated[
        Annotated[_ProjectName, Tag("as-string")]
        | Annotated[_ProjectNumber, Tag("as-integer")]
        | Annotated[Literal[""], Tag("as-empty")]
        | Annotated[None, Tag("as-null")],
        Discriminator(_json_form),
        AfterValidator(project_key),
        Field(description="Project id, or Label Studio's '<id>.<created_at>'; none or '': the default project"),
    ]
LabelConfig = Annotated[
    str | None,
    AfterValidator(_label_config),
    Field(
        description="Label config XML; one that does not parse is a 400 invalid_label_config, one past a limit "
        "(characters, tags, nesting, indexFlag values) a 400 label_config_too_large"
    ),
]


class Body(BaseModel):
    """A request body. `ERRORS` maps a field (or a dotted path) to its API error code, `OTHER_ERROR` the rest;
    a required field absent or null is `missing_<field>` (or its `ERRORS` code if that is a missing_ one)."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True, validate_default=True)
    ERRORS: ClassVar[dict[str, str]] = {}
    OTHER_ERROR: ClassVar[str] = "invalid_field"


class PredictBody(Body):
    """Label Studio's predict call (`params` carries its `login`, `password` and `context`)."""

    tasks: list[_Object] = Field(description="Label Studio tasks, predicted in order")
    project: OptionalProject = ""  # validated (validate_default): the default project
    label_config: str | None = Field(None, description="Label config XML (parsed once per config, cached)")
    params: dict[str, Any] | None = Field(
        None, description="Label Studio's extra parameters; `context` reaches predict"
    )
    ERRORS = {
        "tasks": "invalid_tasks",
        "project": "invalid_project",
        "label_config": "invalid_label_config",
        "params": "invalid_params",
    }


class SetupBody(Body):
    """Label Studio's setup call: the project's label config and how to reach Label Studio."""

    project: Project
    schema_: LabelConfig = Field(None, alias="schema")
    hostname: Annotated[str, Field(pattern=credentials.SETUP_HOSTNAME_PATTERN)] | None = Field(
        None, description="Label Studio's URL, http:// or https://"
    )
    access_token: str | None = Field(
        None, description="Label Studio's token for this project (kept in the state, never logged or echoed)"
    )
    extra_params: Any = Field(None, description="Kept for the model (`extra_params`)")
    ERRORS = {
        "project": "invalid_project",
        "schema": "invalid_label_config",
        "hostname": "invalid_field",
        "access_token": "invalid_field",
    }


class WebhookProject(Body):
    """The project object Label Studio serializes into every webhook."""

    id: ProjectId
    label_config: str | None = Field(None, description="The project's label config XML")


WebhookProjectField = Annotated[
    Annotated[WebhookProject, Tag("as-object")]
    | Annotated[_ProjectName, Tag("as-string")]
    | Annotated[_ProjectNumber, Tag("as-integer")]
    | Annotated[Literal[""], Tag("as-empty")]
    | Annotated[None, Tag("as-null")],
    Discriminator(_json_form),
    Field(description="Label Studio's project object; required by training events"),
]


class WebhookBody(Body):
    """A Label Studio event: training events are queued, others ignored."""

    action: str = Field(min_length=1, description="Label Studio's event name")
    project: WebhookProjectField = None
    annotation: Any = Field(None, description="Passed to the model's fit unchanged")
    task: Any = Field(None, description="Passed to the model's fit unchanged")
    ERRORS = {"action": "missing_action", "project": "invalid_project", "project.label_config": "invalid_label_config"}

    @property
    def project_name(self) -> str:
        """The key the event's project is filed under (`lsml.model.project_key`)."""
        value = self.project
        return project_key(value.id if isinstance(value, WebhookProject) else value)

    @property
    def label_config(self) -> str | None:
        return self.project.label_config if isinstance(self.project, WebhookProject) else None


class TrainBody(Body):
    """The legacy training call (Label Studio 1.23.2 uses /webhook instead)."""

    annotations: list[_Object] = Field(min_length=1, description="Annotated tasks")
    project: OptionalProject = ""  # validated (validate_default): the default project
    label_config: LabelConfig = None
    params: Any = Field(None, description="Passed to the model's fit unchanged")
    ERRORS = {
        "annotations": "missing_annotations",
        "project": "invalid_project",
        "label_config": "invalid_label_config",
    }


#: A job id: what lsml hands out (uuid hex) fits, and so does anything RQ accepts as an id (its
#: `validate_job_id` raises on anything else, which must be a 400 here, not a 500 from RQ).
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class JobStatusBody(Body):
    job: Annotated[str, Field(pattern=JOB_ID_PATTERN)] = Field(
        description="A job id from /webhook, /train or /prelabel"
    )
    ERRORS = {"job": "missing_job"}


class VersionsBody(Body):
    project: OptionalProject = ""  # validated (validate_default): the default project
    ERRORS = {"project": "invalid_project"}


class VersionsQuery(Body):
    """`GET /versions?project=...`: an empty `project=` names nothing (not the default project) and is refused."""

    project: Annotated[_ProjectName, AfterValidator(project_key)] | None = Field(
        None,
        description="Project id or '<id>.<created_at>' (or send it in a JSON body); without a project "
        "(what Label Studio sends) every project's versions",
    )
    ERRORS = {"project": "invalid_project"}


#: A version is named by its number (at most 18 digits, as `lsml.prelabel.VERSION_NAME_PATTERN` says), so a
#: longer name can name nothing; bounding it keeps a 5,000-digit "v999..." from reaching `int()`.
VERSION_MAX_LENGTH = 32
_VersionNumber = Annotated[int, Field(ge=0, le=MAX_PROJECT_ID), BeforeValidator(_integral)]


class ActivateBody(Body):
    project: Project
    version: Annotated[
        Annotated[Annotated[str, Field(pattern=_NOT_BLANK, max_length=VERSION_MAX_LENGTH)], Tag("as-string")]
        | Annotated[_VersionNumber, Tag("as-integer")],
        Discriminator(_json_form),
        Field(description="'v3' or 3"),
    ]
    pin: bool = Field(True, description="Later fits publish new numbers but do not replace it")
    ERRORS = {"project": "invalid_project", "version": "invalid_version", "pin": "invalid_pin"}


class UnpinBody(Body):
    project: Project
    ERRORS = {"project": "invalid_project"}


class PrelabelBody(Body):
    """lsml's own call: unknown fields are refused (a typo must not silently pre-label with defaults)."""

    model_config = ConfigDict(extra="forbid")
    project: Annotated[
        Annotated[Annotated[str, Field(pattern=LS_PROJECT_PATTERN)], Tag("as-string")]
        | Annotated[_ProjectNumber, Tag("as-integer")],
        Discriminator(_json_form),
        AfterValidator(project_key),
        Field(description="A Label Studio project id, or Label Studio's `<id>.<created_at>` name"),
    ]
    mode: Literal[MODES] = Field(  # type: ignore[valid-type]
        "missing",
        description="which tasks: `missing` (no prediction of this version), `unlabelled` (the same, minus "
        "annotated tasks) or `all`",
    )
    batch_size: Annotated[
        int,
        Field(ge=1, le=BATCH_SIZE_MAX, description="tasks per predict call, write and checkpoint"),
        BeforeValidator(_integral),
    ] = BATCH_SIZE_DEFAULT
    max_concurrent: Annotated[
        int,
        Field(ge=1, le=MAX_CONCURRENT_MAX, description="predict calls at once (live /predict keeps its latency at 1)"),
        BeforeValidator(_integral),
    ] = 1
    version: Annotated[str, Field(pattern=VERSION_NAME_PATTERN)] | None = Field(
        None, description="a kept version (default: the current one)"
    )
    ERRORS = {"project": "invalid_project"}
    OTHER_ERROR = "invalid_prelabel"


B = TypeVar("B", bound=Body)


def parse(model: type[B], data: dict) -> B:
    """`data` checked against `model`; the first problem as a 400 naming the field (never its value)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _api_error(model, exc) from None


#: What a pattern means, said in words: the message of a value that does not match it (not the regex).
_PATTERN_HINTS = {
    PROJECT_NAME_PATTERN: "must be '<id>' or '<id>.<created_at>' (at most 64 letters, digits, '_' or '-' before "
    "the dot)",
    LS_PROJECT_PATTERN: "must be a Label Studio project id or its '<id>.<created_at>' name",
    credentials.SETUP_HOSTNAME_PATTERN: "must be an http:// or https:// URL",
    VERSION_NAME_PATTERN: "must be a version name like 'v3'",
    _NOT_BLANK: "must not be blank",
    JOB_ID_PATTERN: "must be a job id (1 to 128 letters, digits, '_' or '-')",
}
_FORMS = {
    "as-string": "a string",
    "as-integer": "an integer",
    "as-empty": "''",
    "as-null": "null",
    "as-object": "an object",
}


def _api_error(model: type[Body], exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False, include_input=True)[0]
    path = ".".join(str(part) for part in error["loc"] if not str(part).startswith("as-"))  # not union tags
    field = path.split(".", 1)[0]
    kind = error["type"]
    if kind == "extra_forbidden":
        return ApiError(400, "invalid_field", f"unknown field '{path}'")
    info = model.model_fields.get(field) or next((f for f in model.model_fields.values() if f.alias == field), None)
    if (kind == "missing" or error.get("input") is None) and path == field and info is not None and info.is_required():
        code = model.ERRORS.get(field, "")
        return ApiError(400, code if code.startswith("missing_") else f"missing_{field}", f"'{field}' is required")
    if kind in _LABEL_CONFIG_CODES:  # raised by `_label_config`, which knows its code
        code = kind
    else:
        code = model.ERRORS.get(path) or model.ERRORS.get(field) or model.OTHER_ERROR
    what = error["msg"]
    if kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") in _PATTERN_HINTS:
        what = _PATTERN_HINTS[error["ctx"]["pattern"]]
    if kind == "is_instance_of":  # _Object
        what = f"must be an object, got {_json_type(error.get('input'))}"
    if kind == "union_tag_invalid":
        forms = [
            _FORMS.get(tag, tag)
            for tag in str(error.get("ctx", {}).get("expected_tags", "")).replace("'", "").split(", ")
        ]
        what = f"must be {' or '.join(forms)}, got {_json_type(error.get('input'))}"
    return ApiError(400, code, f"'{path}': {what}" if path else what)


def _json_type(value: Any) -> str:
    """The JSON type of a value, for messages that must not repeat the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "a string"
