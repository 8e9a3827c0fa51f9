"""Comments and annotation queues through the newest Langfuse Python SDK (5.x), unchanged,
against a real `tracehouse serve`.

The SDK's API client (``langfuse.api.comments.*``, ``langfuse.api.annotation_queues.*``,
``langfuse.api.scores.*``) runs in this process, built only from its public constructor arguments
and a private OpenTelemetry ``TracerProvider``. Nothing of the SDK is patched.

This module runs its own server (like the shared ``server`` fixture, plus a headless-init user
in the project's organization, so queue assignments have a member to assign). The traces the
comments and items point at are ingested over HTTP; score configs come from the score-configs
API when the server has it, else are written into the server's store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import (
    AccessDeniedError,
    AnnotationQueueObjectType,
    AnnotationQueueStatus,
    CreateScoreRequest,
    Error,
    NotFoundError,
)
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import create_engine, insert, select

from tests.compat.conftest import Server
from tests.factories import event, new_id, ts
from tests.serving import serving
from tracehouse.store.schema import score_configs, users

pytestmark = pytest.mark.compat

RUN = uuid.uuid4().hex[:10]
MEMBER_EMAIL = f"annotator-{RUN}@example.com"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("annotations-data")


@pytest.fixture(scope="module")
def annot_server(data_dir: Path) -> Iterator[Server]:
    pk, sk = f"pk-lf-annot-{RUN}", f"sk-lf-annot-{RUN}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "TRACEHOUSE_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        TRACEHOUSE_DATA_DIR=str(data_dir),
        LANGFUSE_INIT_ORG_ID="annot-org",
        LANGFUSE_INIT_ORG_NAME="Annotations",
        LANGFUSE_INIT_PROJECT_ID="annot",
        LANGFUSE_INIT_PROJECT_NAME="Annotations project",
        LANGFUSE_INIT_PROJECT_PUBLIC_KEY=pk,
        LANGFUSE_INIT_PROJECT_SECRET_KEY=sk,
        LANGFUSE_INIT_USER_EMAIL=MEMBER_EMAIL,
        LANGFUSE_INIT_USER_NAME="Annotator",
    )
    with (
        serving(env, data_dir) as url,
        httpx.Client(base_url=url, auth=(pk, sk), timeout=30) as http,
    ):
        yield Server(url=url, public_key=pk, secret_key=sk, project_id="annot", http=http)


@pytest.fixture(scope="module")
def store_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'tracehouse.db'}"


@pytest.fixture(scope="module")
def member_id(annot_server: Server, store_url: str) -> str:
    """The id headless init gave the user (a member of the project's organization)."""
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            user_id = conn.execute(
                select(users.c.id).where(users.c.email == MEMBER_EMAIL)
            ).scalar_one()
    finally:
        engine.dispose()
    return str(user_id)


@pytest.fixture(scope="module")
def lf(annot_server: Server) -> Iterator[Langfuse]:
    client = Langfuse(
        public_key=annot_server.public_key,
        secret_key=annot_server.secret_key,
        base_url=annot_server.url,
        tracer_provider=TracerProvider(),
        environment="sdk5-annotations",
    )
    try:
        yield client
    finally:
        client.shutdown()


def _score_config(server: Server, store_url: str, name: str) -> str:
    body = {"name": name, "dataType": "NUMERIC", "minValue": 0, "maxValue": 1}
    r = server.http.post("/api/public/score-configs", json=body)
    if r.status_code == 200:
        return str(r.json()["id"])
    assert r.status_code in (404, 405), r.text  # no score-configs route in this build
    config_id = new_id()
    now = datetime.now(UTC)
    engine = create_engine(store_url, connect_args={"timeout": 30})
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(score_configs).values(
                    project_id=server.project_id,
                    id=config_id,
                    name=name,
                    data_type="NUMERIC",
                    is_archived=False,
                    min_value=0.0,
                    max_value=1.0,
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        engine.dispose()
    return config_id


def _trace(server: Server) -> dict[str, str]:
    trace_id, obs_id, session_id = new_id(), new_id(), f"sdk5-session-{new_id()}"
    server.ingest(
        [
            event("trace-create", {"id": trace_id, "sessionId": session_id, "timestamp": ts(0)}),
            event("generation-create", {"id": obs_id, "traceId": trace_id, "startTime": ts(1)}),
        ]
    )
    return {"trace": trace_id, "observation": obs_id, "session": session_id}


# --------------------------------------------------------------------------------------------
# Comments


def test_comments_create_list_get(lf: Langfuse, annot_server: Server) -> None:
    ids = _trace(annot_server)
    prompt = annot_server.http.post(
        "/api/public/v2/prompts",
        json={"name": f"sdk5-{RUN}-prompt", "type": "text", "prompt": "Hi"},
    )
    assert prompt.status_code == 200, prompt.text
    targets = [
        ("TRACE", ids["trace"]),
        ("OBSERVATION", ids["observation"]),
        ("SESSION", ids["session"]),
        ("PROMPT", prompt.json()["id"]),
    ]
    created = {}
    for object_type, object_id in targets:
        reply = lf.api.comments.create(
            project_id=annot_server.project_id,
            object_type=object_type,
            object_id=object_id,
            content=f"note on the {object_type.lower()}",
            author_user_id=f"sdk-{RUN}",
        )
        created[object_type] = reply.id

    comment = lf.api.comments.get_by_id(created["OBSERVATION"])
    assert comment.object_type == "OBSERVATION"
    assert comment.object_id == ids["observation"]
    assert comment.content == "note on the observation"
    assert comment.author_user_id == f"sdk-{RUN}"
    assert comment.project_id == annot_server.project_id

    mine = lf.api.comments.get(author_user_id=f"sdk-{RUN}", limit=10)
    assert [c.id for c in mine.data] == [created[t] for t, _ in reversed(targets)]
    assert mine.meta.total_items == 4
    on_trace = lf.api.comments.get(object_type="TRACE", object_id=ids["trace"])
    assert [c.id for c in on_trace.data] == [created["TRACE"]]
    page = lf.api.comments.get(author_user_id=f"sdk-{RUN}", page=2, limit=3)
    assert [c.id for c in page.data] == [created["TRACE"]]
    assert (page.meta.page, page.meta.total_pages) == (2, 2)


def test_comment_errors(lf: Langfuse, annot_server: Server) -> None:
    trace_id = _trace(annot_server)["trace"]
    with pytest.raises(NotFoundError):
        lf.api.comments.create(
            project_id=annot_server.project_id,
            object_type="TRACE",
            object_id="no-such-trace",
            content="lost",
        )
    with pytest.raises(AccessDeniedError):
        lf.api.comments.create(
            project_id="someone-else", object_type="TRACE", object_id=trace_id, content="x"
        )
    with pytest.raises(Error) as bad:
        lf.api.comments.create(
            project_id=annot_server.project_id,
            object_type="TRACE",
            object_id=trace_id,
            content="x" * 5001,
        )
    assert "content" in bad.value.body["message"]
    with pytest.raises(Error):
        lf.api.comments.get(object_id=trace_id)  # objectId needs objectType
    with pytest.raises(NotFoundError):
        lf.api.comments.get_by_id("no-such-comment")


# --------------------------------------------------------------------------------------------
# Annotation queues


def test_annotation_queue_workflow(
    lf: Langfuse, annot_server: Server, store_url: str, member_id: str
) -> None:
    config = _score_config(annot_server, store_url, f"sdk5-{RUN}-correctness")
    queue = lf.api.annotation_queues.create_queue(
        name=f"sdk5-{RUN}-review",
        description="answers to double-check",
        score_config_ids=[config],
    )
    assert queue.score_config_ids == [config]
    assert queue.description == "answers to double-check"
    got = lf.api.annotation_queues.get_queue(queue.id)
    assert (got.id, got.name) == (queue.id, queue.name)
    listed = lf.api.annotation_queues.list_queues(limit=100)
    assert queue.id in [q.id for q in listed.data]

    # assign the organization's member
    assignment = lf.api.annotation_queues.create_queue_assignment(queue.id, user_id=member_id)
    assert (assignment.user_id, assignment.queue_id, assignment.project_id) == (
        member_id,
        queue.id,
        annot_server.project_id,
    )

    # enqueue a trace and an observation
    ids = _trace(annot_server)
    trace_item = lf.api.annotation_queues.create_queue_item(
        queue.id, object_id=ids["trace"], object_type=AnnotationQueueObjectType.TRACE
    )
    obs_item = lf.api.annotation_queues.create_queue_item(
        queue.id, object_id=ids["observation"], object_type=AnnotationQueueObjectType.OBSERVATION
    )
    assert trace_item.status == AnnotationQueueStatus.PENDING
    assert trace_item.completed_at is None
    pending = lf.api.annotation_queues.list_queue_items(
        queue.id, status=AnnotationQueueStatus.PENDING
    )
    assert [i.id for i in pending.data] == [obs_item.id, trace_item.id]

    # annotate the trace on the queue's config, then complete its item
    scored = lf.api.scores.create(
        request=[
            CreateScoreRequest(
                trace_id=ids["trace"],
                name=f"sdk5-{RUN}-correctness",
                value=1.0,
                data_type="NUMERIC",
                source="ANNOTATION",
                config_id=config,
                queue_id=queue.id,
            )
        ]
    )
    assert scored is not None
    done = lf.api.annotation_queues.update_queue_item(
        queue.id, trace_item.id, status=AnnotationQueueStatus.COMPLETED
    )
    assert done.status == AnnotationQueueStatus.COMPLETED
    assert done.completed_at is not None
    fetched = lf.api.annotation_queues.get_queue_item(queue.id, trace_item.id)
    assert fetched.status == AnnotationQueueStatus.COMPLETED
    completed = lf.api.annotation_queues.list_queue_items(
        queue.id, status=AnnotationQueueStatus.COMPLETED
    )
    assert [i.id for i in completed.data] == [trace_item.id]
    scores = lf.api.scores.get_many(queue_id=queue.id, fields="details,subject,annotation")
    assert [(s.source, s.queue_id, s.config_id) for s in scores.data] == [
        ("ANNOTATION", queue.id, config)
    ]
    assert scores.data[0].subject is not None
    assert (scores.data[0].subject.kind, scores.data[0].subject.id) == ("trace", ids["trace"])

    # dequeue the observation, unassign the member
    deleted = lf.api.annotation_queues.delete_queue_item(queue.id, obs_item.id)
    assert deleted.success is True
    with pytest.raises(NotFoundError):
        lf.api.annotation_queues.get_queue_item(queue.id, obs_item.id)
    assert lf.api.annotation_queues.delete_queue_assignment(queue.id, user_id=member_id).success
    remaining = lf.api.annotation_queues.list_queue_items(queue.id)
    assert [i.id for i in remaining.data] == [trace_item.id]
    assert remaining.meta.total_items == 1


def test_annotation_queue_errors(
    lf: Langfuse, annot_server: Server, store_url: str, member_id: str
) -> None:
    with pytest.raises(Error) as bad:
        lf.api.annotation_queues.create_queue(
            name=f"sdk5-{RUN}-broken", score_config_ids=["no-such-config"]
        )
    assert "scoreConfigIds" in bad.value.body["message"]
    with pytest.raises(NotFoundError):
        lf.api.annotation_queues.get_queue("no-such-queue")
    config = _score_config(annot_server, store_url, f"sdk5-{RUN}-tone")
    queue = lf.api.annotation_queues.create_queue(
        name=f"sdk5-{RUN}-tone", score_config_ids=[config]
    )
    with pytest.raises(Error):  # the name is taken
        lf.api.annotation_queues.create_queue(name=f"sdk5-{RUN}-tone", score_config_ids=[config])
    with pytest.raises(NotFoundError):
        lf.api.annotation_queues.create_queue_item(
            queue.id, object_id="no-such-trace", object_type=AnnotationQueueObjectType.TRACE
        )
    with pytest.raises(NotFoundError):
        lf.api.annotation_queues.create_queue_assignment(queue.id, user_id="no-such-user")
    with pytest.raises(NotFoundError):
        lf.api.annotation_queues.update_queue_item(
            queue.id, "no-such-item", status=AnnotationQueueStatus.COMPLETED
        )
    items: Any = lf.api.annotation_queues.list_queue_items(queue.id)
    assert items.data == []
