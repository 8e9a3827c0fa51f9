"""Contract checks: validate tracehouse's HTTP responses against Langfuse's public OpenAPI spec.

Usage in a test::

    from tests.contract import assert_response_matches

    r = client.get("/api/public/traces")
    assert_response_matches(r)

The operation is found from the request's method and URL path (literal paths win over
templates such as ``/api/public/traces/{traceId}``); ``path=`` / ``method=`` override them (``path``
may be a spec template or a concrete path). The status code must be documented for that
operation, and the body must be valid for that status's response schema. Validation is done by
openapi-core (OAS 3.0 semantics: ``nullable``, ``allOf``/``oneOf``/``anyOf``, formats, with
``date-time`` checked strictly as RFC 3339). Every schema error is listed with its JSON pointer.

The spec is ``<repo>/../shared/reference/langfuse-public-api.openapi.yml`` unless the environment
variable ``TRACEHOUSE_OPENAPI_SPEC`` names another file. It is parsed once per process.

The spec as published does not validate as OAS 3.0 and has a few constructs a strict OAS 3.0
validator rejects although the reference server produces them; :func:`normalise_spec` rewrites
those (see its docstring). The rewrites are listed in ``load_contract().notes``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from jsonschema.exceptions import ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.exceptions import MediaTypeDeserializeError
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

SPEC_ENV_VAR = "TRACEHOUSE_OPENAPI_SPEC"
SPEC_FILENAME = "langfuse-public-api.openapi.yml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SYNTHETIC_HOST = "http://contract.invalid"
_MAX_MESSAGE_CHARS = 300


# --------------------------------------------------------------------------------------------
# Locating and loading the spec
# --------------------------------------------------------------------------------------------


def spec_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the OpenAPI spec is read from (``$TRACEHOUSE_OPENAPI_SPEC`` wins)."""
    override = (os.environ if environ is None else environ).get(SPEC_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    repo = Path(__file__).resolve().parent.parent
    return (repo.parent / "shared" / "reference" / SPEC_FILENAME).resolve()


_RFC3339_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def is_rfc3339_datetime(value: object) -> bool:
    """RFC 3339 ``date-time`` (what OAS 3.0 means by ``format: date-time``).

    A time-zone designator is required ("Z" or "+hh:mm"); any number of fraction digits is
    allowed. Non-strings pass, as JSON Schema formats only constrain strings.
    """
    if not isinstance(value, str):
        return True
    m = _RFC3339_DATETIME.match(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    offset = m.group(8)
    if offset not in ("Z", "z"):
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            return False
    try:
        # RFC 3339 allows a leap second (:60); check the rest with second clamped.
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


def _is_tagged_union(branches: list[Any]) -> bool:
    """True when every branch pins a required property to a single enum value (a tag).

    Such a ``oneOf`` is mutually exclusive by construction, so ``oneOf`` is exact for it.
    """
    if not branches:
        return False
    for branch in branches:
        if not isinstance(branch, dict):
            return False
        parts = [branch, *(p for p in branch.get("allOf", []) if isinstance(p, dict))]
        required = set(branch.get("required", []))
        for part in parts:
            required.update(part.get("required", []))
        tagged = any(
            isinstance(prop, dict)
            and isinstance(prop.get("enum"), list)
            and len(prop["enum"]) == 1
            and name in required
            for part in parts
            for name, prop in part.get("properties", {}).items()
        )
        if not tagged:
            return False
    return True


def normalise_spec(spec: dict[str, Any]) -> list[str]:
    """Rewrite, in place, the spec constructs that break strict OAS 3.0 validation.

    Returns one note per rewrite. The rewrites:

    * ``const: X`` (not an OAS 3.0 keyword; the spec fails OAS 3.0 validation on it and the
      OAS 3.0 schema validator would silently ignore it) becomes ``enum: [X]``.
    * ``$ref`` with a sibling ``nullable: true`` (64 places, e.g. ``Traces._deprecation``): in
      OAS 3.0 siblings of ``$ref`` are ignored, so ``null`` would be rejected although the spec
      plainly means "this object or null". Becomes ``anyOf: [{$ref}, {enum: [null]}]``.
    * ``oneOf`` that is not a tagged union (e.g. ``MapValue``: string | integer | number | ...,
      every branch nullable) becomes ``anyOf``. These are generated from TypeScript unions
      (``A | B``); their branches overlap (an integer is also a ``number``, ``null`` matches
      every nullable branch), so ``oneOf``'s "exactly one" would reject valid values. Tagged
      unions (``Score`` by ``dataType``, ``IngestionEvent`` by ``type`` ...) keep ``oneOf``.
    """
    notes: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}/{i}")
            return
        if not isinstance(node, dict):
            return
        is_name_map = where.endswith(("/properties", "/schemas", "/paths", "/responses"))
        if "const" in node and not is_name_map:
            node["enum"] = [node.pop("const")]
            notes.append(f"{where}: const -> enum")
        if "$ref" in node and node.get("nullable") is True:
            ref = node.pop("$ref")
            node.pop("nullable")
            node["anyOf"] = [{"$ref": ref}, {"enum": [None]}]
            notes.append(f"{where}: $ref+nullable -> anyOf[$ref, null]")
        branches = node.get("oneOf")
        untagged = isinstance(branches, list) and not _is_tagged_union(branches)
        if untagged and "discriminator" not in node:
            node["anyOf"] = node.pop("oneOf")
            notes.append(f"{where}: untagged oneOf -> anyOf")
        for key, value in node.items():
            walk(value, f"{where}/{key}")

    walk(spec, "#")
    return notes


@dataclass(frozen=True)
class _PathTemplate:
    template: str
    regex: re.Pattern[str]
    n_params: int
    literal_chars: int


@dataclass
class Contract:
    """The loaded spec: the raw (normalised) dict, the openapi-core app and a path index."""

    source: Path
    spec: dict[str, Any]
    api: OpenAPI
    notes: list[str]
    templates: list[_PathTemplate] = field(default_factory=list)

    def find_path(self, method: str, url_path: str) -> str:
        """The spec path template serving ``method url_path`` (raises AssertionError)."""
        method = method.lower()
        if url_path in self.spec["paths"]:
            candidates = [url_path]
        else:
            matches = [t for t in self.templates if t.regex.match(url_path)]
            # Literal paths first, then fewer parameters, then the longest fixed text.
            matches.sort(key=lambda t: (t.n_params, -t.literal_chars))
            candidates = [t.template for t in matches]
        if not candidates:
            raise AssertionError(
                f"{method.upper()} {url_path}: no path in the OpenAPI spec matches"
            )
        for template in candidates:
            if method in self.spec["paths"][template]:
                return template
        allowed = sorted(
            {m.upper() for t in candidates for m in self.spec["paths"][t] if m in HTTP_METHODS}
        )
        raise AssertionError(
            f"{method.upper()} {url_path}: method not documented for {candidates[0]} "
            f"(documented: {', '.join(allowed) or 'none'})"
        )


def _compile_template(template: str) -> _PathTemplate:
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    n_params = sum(1 for p in parts if p.startswith("{"))
    literal = sum(len(p) for p in parts if not p.startswith("{"))
    return _PathTemplate(template, re.compile(f"^{regex}$"), n_params, literal)


@lru_cache(maxsize=4)
def _load(path: Path) -> Contract:
    if not path.is_file():
        raise FileNotFoundError(
            f"OpenAPI spec not found at {path} (set {SPEC_ENV_VAR} to its location)"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        raw = yaml.load(fh, Loader=loader)
    spec = copy.deepcopy(raw)
    notes = normalise_spec(spec)
    config = Config(extra_format_validators={"date-time": is_rfc3339_datetime})
    # from_dict also validates the (normalised) spec itself as OAS 3.0.
    api = OpenAPI.from_dict(spec, config=config)
    templates = [_compile_template(t) for t in spec["paths"]]
    return Contract(source=path, spec=spec, api=api, notes=notes, templates=templates)


def load_contract(environ: Mapping[str, str] | None = None) -> Contract:
    """The process-wide parsed spec (loaded on first use, cached per spec file)."""
    return _load(spec_path(environ))


# --------------------------------------------------------------------------------------------
# openapi-core request/response protocol objects
# --------------------------------------------------------------------------------------------


@dataclass
class _CoreRequest:
    """The bits of openapi-core's Request protocol used by response validation."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters = field(default_factory=RequestParameters)
    content_type: str = "application/json"
    body: bytes | None = None

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


@dataclass
class _CoreResponse:
    data: bytes
    status_code: int
    content_type: str
    headers: dict[str, str]


# --------------------------------------------------------------------------------------------
# Error formatting
# --------------------------------------------------------------------------------------------


def _pointer(parts: Any) -> str:
    tokens = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(tokens) if tokens else "/"


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        return text[: _MAX_MESSAGE_CHARS - 3] + "..."
    return text


def _branch_errors(error: ValidationError) -> list[ValidationError]:
    """For a failed oneOf/anyOf, the errors of the branch(es) the instance was meant for.

    Branches that fail on an ``enum`` (a tag such as ``dataType``, or the ``null`` branch of a
    nullable ``$ref``) are assumed not to be meant; among the rest the fewest-error ones win.
    """
    by_branch: dict[Any, list[ValidationError]] = {}
    for sub in error.context or []:
        key = sub.schema_path[0] if sub.schema_path else None
        by_branch.setdefault(key, []).append(sub)
    if not by_branch:
        return []
    untagged = {
        k: errs
        for k, errs in by_branch.items()
        if not any(e.validator == "enum" and len(e.relative_path) <= 1 for e in errs)
    }
    pool = untagged or by_branch
    fewest = min(len(errs) for errs in pool.values())
    return [e for errs in pool.values() if len(errs) == fewest for e in errs]


def _flatten(errors: list[ValidationError]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in errors:
        if err.message == "None for not nullable":
            # The same `type` keyword also yields "None is not of type ..."; say it once.
            out.append((_pointer(err.absolute_path), "null is not allowed (not nullable)"))
            continue
        if err.validator == "type" and err.instance is None:
            continue
        if err.validator in ("oneOf", "anyOf") and err.context:
            inner = _flatten(_branch_errors(err))
            kind = "matches more than one" if "valid under each" in err.message else "matches no"
            out.append((_pointer(err.absolute_path), f"value {kind} branch of {err.validator}"))
            out.extend(inner)
            continue
        out.append((_pointer(err.absolute_path), _short(err.message)))
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in out:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


# --------------------------------------------------------------------------------------------
# The assertion
# --------------------------------------------------------------------------------------------


def _request_target(
    response: httpx.Response, path: str | None, method: str | None
) -> tuple[str, str]:
    request: httpx.Request | None
    try:
        request = response.request
    except RuntimeError:
        request = None
    if method is None:
        if request is None:
            raise AssertionError("response has no request: pass method= (and path=)")
        method = request.method
    if path is None:
        if request is None:
            raise AssertionError("response has no request: pass path=")
        # The raw (still percent-encoded) path, so an encoded "/" inside a parameter value
        # (e.g. a prompt name "folder%2Fname") stays inside its segment.
        path = request.url.raw_path.decode("ascii").split("?", 1)[0]
    else:
        path = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    return method.upper(), path


def check_response(
    response: httpx.Response, *, path: str | None = None, method: str | None = None
) -> list[str]:
    """Problems of ``response`` against the contract, one readable line each (empty if none)."""
    contract = load_contract()
    method, url_path = _request_target(response, path, method)
    template = contract.find_path(method, url_path)
    operation = contract.spec["paths"][template][method.lower()]
    op_name = operation.get("operationId", "?")
    status = response.status_code

    response.read()
    content_type = response.headers.get("content-type", "")
    core_request = _CoreRequest(host_url=_SYNTHETIC_HOST, path=template, method=method.lower())
    core_response = _CoreResponse(
        data=response.content,
        status_code=status,
        content_type=content_type,
        headers=dict(response.headers),
    )
    where = f"{method} {url_path} -> {status} (operation {op_name}, path {template})"
    if status == 204 and response.content:
        return [f"{where}: a 204 reply must have an empty body, got {len(response.content)} bytes"]
    try:
        contract.api.validate_response(core_request, core_response)
    except ResponseNotFound:
        documented = ", ".join(sorted(str(s) for s in operation.get("responses", {})))
        return [f"{where}: status {status} is not documented (documented: {documented})"]
    except PathError as exc:  # pragma: no cover - find_path already picked the operation
        return [f"{where}: {exc}"]
    except Exception as exc:  # every other validation failure
        cause = exc.__cause__
        if isinstance(cause, InvalidSchemaValue):
            problems = _flatten(list(cause.schema_errors))
            return [f"{where}: body does not match the response schema"] + [
                f"  {pointer}: {message}" for pointer, message in problems
            ]
        if isinstance(cause, MediaTypeNotFound):
            documented = ", ".join(operation["responses"][str(status)].get("content", {}))
            return [f"{where}: content-type {content_type!r} not documented (only: {documented})"]
        if isinstance(cause, MediaTypeDeserializeError):
            return [f"{where}: body is not valid for its content-type ({_short(str(cause))})"]
        detail = str(cause) if cause is not None else str(exc)
        return [f"{where}: {type(exc).__name__}: {_short(detail)}"]
    return []


def assert_response_matches(
    response: httpx.Response, *, path: str | None = None, method: str | None = None
) -> None:
    """Fail with every contract violation of ``response`` listed (JSON pointer + message)."""
    problems = check_response(response, path=path, method=method)
    if problems:
        raise AssertionError(
            "response does not match the OpenAPI contract:\n" + "\n".join(problems)
        )
