"""Errors of the flow engine: a graph refused at save time, and a node that fails at run time.

`GraphInvalid` is a user mistake found when an app is saved (422, names the
node). `NodeFailed` is raised inside a run; the scheduler turns it into a
`node_finished {status: failed}` plus an `error {code, message}` event and
fails the run. `code` is a short stable word clients can switch on.
"""

from __future__ import annotations

from headwater.errors import HeadwaterError, InvalidInput


class GraphInvalid(InvalidInput):
    """The graph of a chatflow/workflow is not acceptable; the message names the node."""

    def __init__(self, detail: str, node_id: str | None = None):
        super().__init__(f"node '{node_id}': {detail}" if node_id else detail)
        self.node_id = node_id


class NodeFailed(HeadwaterError):
    """A node could not produce its outputs. `status_code` is what a synchronous caller sees."""

    status_code = 502

    def __init__(self, detail: str, *, code: str = "node_failed", status_code: int | None = None):
        super().__init__(detail)
        self.code = code
        if status_code is not None:
            self.status_code = status_code


class NodeTimeout(NodeFailed):
    def __init__(self, detail: str):
        super().__init__(detail, code="timeout", status_code=504)


class FeatureUnavailable(InvalidInput):
    """A registered node type whose capability this server does not offer (code disabled, no knowledge)."""
