"""POST /api/public/otel/v1/traces: OTLP/HTTP (protobuf or JSON), answered after the commit."""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..auth.keys import Principal
from ..errors import TracehouseError
from ..ingest.otlp import DecodedExport, decode_json, decode_protobuf
from .deps import ProjectPrincipal, Services, ServicesDep, read_body

router = APIRouter()

TRACES_PATH = "/api/public/otel/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# From 5.0 the Python SDK JSON-encodes every metadata attribute value it writes, on its own
# spans and on the third-party spans it exports with propagated metadata.
JSON_METADATA_PYTHON_SDK_SINCE = 5
_INLINE_DECODE_BYTES = 512 * 1024


class UnsupportedMediaType(TracehouseError):
    status = 415
    error = "UnsupportedMediaTypeError"


def _reply(decoded: DecodedExport, media_type: str) -> Response:
    """ExportTraceServiceResponse; rejected spans are reported as a partial success (OTLP spec)."""
    message = ExportTraceServiceResponse()
    if decoded.rejected:
        message.partial_success.rejected_spans = len(decoded.rejected)
        shown = "; ".join(
            f"span {e.span_id or '?'} of trace {e.trace_id or '?'}: {e.message}"
            for e in decoded.rejected[:10]
        )
        more = len(decoded.rejected) - 10
        message.partial_success.error_message = shown + (f"; and {more} more" if more > 0 else "")
    if media_type == PROTOBUF:
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)


@router.post(TRACES_PATH)
async def export_traces(
    request: Request, services: ServicesDep, principal: ProjectPrincipal
) -> Response:
    return await export(request, services, principal)


async def export(request: Request, services: Services, principal: Principal) -> Response:
    """The route's work, also run by ``IngestFastPath`` (fastpath.py) without the routing."""
    content_type = request.headers.get("content-type", "").lower()
    if PROTOBUF in content_type:
        media_type, decode = PROTOBUF, decode_protobuf
    elif JSON in content_type:
        media_type, decode = JSON, decode_json
    else:
        raise UnsupportedMediaType(
            f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type or 'none'!r}"
        )
    body = await read_body(request, services.settings.max_body_bytes)
    json_metadata = _sdk_major_version(request, "python") >= JSON_METADATA_PYTHON_SDK_SINCE
    if len(body) <= _INLINE_DECODE_BYTES:
        # A typical export (a few hundred spans) decodes in a few ms: handing it to a thread
        # would cost more in GIL hand-overs between the threads than it saves.
        decoded = decode(body, json_metadata=json_metadata)
    else:
        decoded = await anyio.to_thread.run_sync(partial(decode, json_metadata=json_metadata), body)
    await services.writer.write(principal.project_id, decoded.events)
    return _reply(decoded, media_type)


def _header(request: Request, name: str) -> str:
    """A Langfuse SDK header, in its hyphen or underscore spelling."""
    return request.headers.get(name) or request.headers.get(name.replace("-", "_")) or ""


def _sdk_major_version(request: Request, sdk_name: str) -> int:
    """The major version from ``x-langfuse-sdk-version`` when ``x-langfuse-sdk-name`` is
    ``sdk_name``; 0 otherwise."""
    if _header(request, "x-langfuse-sdk-name").strip().lower() != sdk_name:
        return 0
    major = _header(request, "x-langfuse-sdk-version").strip().lstrip("vV").split(".")[0]
    return int(major) if major.isdigit() else 0
