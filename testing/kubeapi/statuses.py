"""Failures as the real API server reports them: ``Status`` objects with code and reason.

Responsible for: the one exception type the emulator raises for API-level
failures (:class:`StatusError`) and the constructors for each failure the
emulator can produce, with the messages, reasons and ``details`` shaped as
kube-apiserver shapes them, so that client code parsing them (``e.status``,
``json.loads(e.body)["reason"]``) behaves as against a cluster.

Must not: decide *when* a failure happens (storage and handling do), or
render HTTP. A bug in the emulator is not a Status; let it raise.
"""

from __future__ import annotations

from typing import Any

from . import resources

JSON = dict[str, Any]


class StatusError(Exception):
    """An API failure carrying the ``Status`` body and HTTP code the server answers with."""

    def __init__(
        self, *, code: int, reason: str, message: str, details: JSON | None = None
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @property
    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(spec: resources.ResourceSpec, name: str) -> JSON:
    # The real server puts the plural ("pods"), not the Kind, into details.kind.
    details: JSON = {"name": name, "kind": spec.plural}
    if spec.group:
        details["group"] = spec.group
    return details


def success(*, spec: resources.ResourceSpec, name: str, uid: str) -> JSON:
    """What DELETE answers for resources that do not return the deleted object."""
    details = _details(spec, name)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def not_found(*, spec: resources.ResourceSpec, name: str) -> StatusError:
    return StatusError(
        code=404,
        reason="NotFound",
        message=f'{spec.qualified} "{name}" not found',
        details=_details(spec, name),
    )


def no_such_resource() -> StatusError:
    """An unknown group, version or resource: what a cluster without the CRD answers."""
    return StatusError(
        code=404,
        reason="NotFound",
        message="the server could not find the requested resource",
        details={},
    )


def namespace_not_found(namespace: str) -> StatusError:
    spec = resources.ResourceSpec(
        group="", version="v1", plural="namespaces", kind="Namespace", namespaced=False
    )
    return not_found(spec=spec, name=namespace)


def already_exists(*, spec: resources.ResourceSpec, name: str) -> StatusError:
    return StatusError(
        code=409,
        reason="AlreadyExists",
        message=f'{spec.qualified} "{name}" already exists',
        details=_details(spec, name),
    )


def conflict(*, spec: resources.ResourceSpec, name: str, why: str) -> StatusError:
    return StatusError(
        code=409,
        reason="Conflict",
        message=f'Operation cannot be fulfilled on {spec.qualified} "{name}": {why}',
        details=_details(spec, name),
    )


def modified(*, spec: resources.ResourceSpec, name: str) -> StatusError:
    """The optimistic-concurrency failure of PUT with a stale resourceVersion."""
    why = (
        "the object has been modified;"
        " please apply your changes to the latest version and try again"
    )
    return conflict(spec=spec, name=name, why=why)


def apply_conflicts(*, owners: dict[str, str]) -> StatusError:
    """Server-side apply touching fields another manager owns with a different value.

    ``owners`` maps a field path (``.spec.replicas``) to the manager owning it. The
    message is structured-merge-diff's, one line per manager, as kubectl prints it.
    """
    by_manager: dict[str, list[str]] = {}
    for path, manager in sorted(owners.items()):
        by_manager.setdefault(manager, []).append(path)
    lines = [
        f'conflict with "{manager}": {paths[0]}'
        if len(paths) == 1
        else f'conflicts with "{manager}":\n- ' + "\n- ".join(paths)
        for manager, paths in sorted(by_manager.items())
    ]
    count = len(owners)
    summary = "\n".join(lines)
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{manager}"', "field": path}
        for path, manager in sorted(owners.items())
    ]
    return StatusError(
        code=409,
        reason="Conflict",
        message=f"Apply failed with {count} conflict{'s' if count > 1 else ''}: {summary}",
        details={"causes": causes},  # no name/kind: the server leaves them out here
    )


def gone(*, requested: int, oldest: int) -> StatusError:
    # No details: the real "too old resource version" Status carries none.
    return StatusError(
        code=410,
        reason="Expired",
        message=f"too old resource version: {requested} ({oldest})",
    )


def bad_request(message: str) -> StatusError:
    return StatusError(code=400, reason="BadRequest", message=message)


def invalid(*, spec: resources.ResourceSpec, name: str, field: str, message: str) -> StatusError:
    details = _details(spec, name)
    details["kind"] = spec.kind  # Invalid is the one reason that names the Kind
    details["causes"] = [{"reason": "FieldValueInvalid", "message": message, "field": field}]
    return StatusError(
        code=422,
        reason="Invalid",
        message=f'{spec.kind} "{name}" is invalid: {field}: {message}',
        details=details,
    )


def invalid_patch(message: str) -> StatusError:
    """A JSON patch that does not apply (missing path, failed ``test``): 422 as on the server."""
    return StatusError(code=422, reason="Invalid", message=message, details={})


def method_not_allowed(method: str) -> StatusError:
    return StatusError(
        code=405,
        reason="MethodNotAllowed",
        message=f"the server does not allow this method on the requested resource ({method})",
        details={},
    )


def unsupported_media_type(content_type: str, accepted: tuple[str, ...]) -> StatusError:
    return StatusError(
        code=415,
        reason="UnsupportedMediaType",
        message=(
            f"the body of the request was in an unknown format ({content_type})"
            f" - accepted media types include: {', '.join(accepted)}"
        ),
    )


def internal(message: str) -> StatusError:
    return StatusError(
        code=500,
        reason="InternalError",
        message=f"Internal error occurred: {message}",
        details={"causes": [{"message": message}]},
    )
