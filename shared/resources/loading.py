"""Read manifests (multi-document YAML or a `List`) and validate tailwire's resources.

`validate_object` turns one manifest into its typed model plus the problems found, each
naming the field: what `tailwire validate`, `tailwire render` and the renderer's status
conditions all report, in the same words. Other kinds pass through untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import yaml

from tailwire.shared import errors
from tailwire.shared.resources import common, egressgroup, tailscalegateway, tailscaletailnet

Resource = (
    egressgroup.EgressGroup | tailscalegateway.TailscaleGateway | tailscaletailnet.TailscaleTailnet
)

_MODELS: dict[
    tuple[str, str], tuple[type[pydantic.BaseModel], Callable[[Any], list[errors.Problem]]]
] = {
    (egressgroup.API_VERSION, egressgroup.KIND): (egressgroup.EgressGroup, egressgroup.check),
    (tailscalegateway.API_VERSION, tailscalegateway.KIND): (
        tailscalegateway.TailscaleGateway,
        tailscalegateway.check,
    ),
    (tailscaletailnet.API_VERSION, tailscaletailnet.KIND): (
        tailscaletailnet.TailscaleTailnet,
        tailscaletailnet.check,
    ),
}
OUR_GROUPS = {egressgroup.GROUP, tailscalegateway.GROUP}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checked:
    """One manifest after validation: the model if valid, and every problem found."""

    raw: dict[str, Any]
    kind: str
    name: str
    resource: Resource | None
    problems: tuple[errors.Problem, ...]

    @property
    def ours(self) -> bool:
        return (str(self.raw.get("apiVersion", "")), self.kind) in _MODELS

    @property
    def valid(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """`<kind>/<name>: <field path>: <message>`, one per problem."""
        return [f"{self.kind}/{self.name}: {p}" for p in self.problems]


def iter_documents(text: str) -> Iterator[dict[str, Any]]:
    """Every object in a YAML stream; `kind: List` (kubectl get -o yaml) is unpacked.

    Raises ValidationFailed for YAML that does not parse or a document that is not a mapping.
    """
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise errors.ValidationFailed(
            [errors.Problem(field=f"yaml ({where})", message=str(problem))]
        ) from None
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise errors.ValidationFailed(
                [
                    errors.Problem(
                        field=f"document {index + 1}",
                        message="is not a mapping (expected a Kubernetes object)",
                    )
                ]
            )
        if document.get("kind") == "List" or (
            str(document.get("kind", "")).endswith("List")
            and isinstance(document.get("items"), list)
        ):
            for item in document.get("items") or []:
                if isinstance(item, dict):
                    yield item
            continue
        yield document


def validate_object(raw: dict[str, Any]) -> Checked:
    kind = str(raw.get("kind") or "<no kind>")
    metadata = raw.get("metadata")
    name = (
        str(metadata.get("name"))
        if isinstance(metadata, dict) and metadata.get("name")
        else "<no name>"
    )
    api_version = raw.get("apiVersion")
    problems: list[errors.Problem] = []
    if not api_version:
        problems.append(errors.Problem(field="apiVersion", message="required"))
    if kind == "<no kind>":
        problems.append(errors.Problem(field="kind", message="required"))
    if problems:
        return Checked(raw=raw, kind=kind, name=name, resource=None, problems=tuple(problems))
    entry = _MODELS.get((str(api_version), kind))
    if entry is None:
        group = str(api_version).split("/")[0]
        if group in OUR_GROUPS:
            problem = errors.Problem(field="kind", message=f"unknown kind {kind} in {api_version}")
            return Checked(raw=raw, kind=kind, name=name, resource=None, problems=(problem,))
        return Checked(raw=raw, kind=kind, name=name, resource=None, problems=())
    model, check = entry
    try:
        resource = model.model_validate(raw)
    except pydantic.ValidationError as exc:
        return Checked(
            raw=raw, kind=kind, name=name, resource=None, problems=tuple(common.problems_from(exc))
        )
    problems = check(resource)
    typed: Resource = resource  # type: ignore[assignment]
    return Checked(
        raw=raw,
        kind=kind,
        name=name,
        resource=None if problems else typed,
        problems=tuple(problems),
    )


def validate_text(text: str) -> list[Checked]:
    """Validate every object in a YAML stream (ValidationFailed if the YAML is unreadable)."""
    return [validate_object(document) for document in iter_documents(text)]
