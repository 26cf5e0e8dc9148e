"""docs/asyncapi.yaml is what `tailwire asyncapi` generates from the apps, and it covers every
subscriber and every subject area of docs/subjects.md."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from tailwire.cli import asyncapi
from tailwire.shared import subjects

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_asyncapi_is_not_stale() -> None:
    current = (DOCS / "asyncapi.yaml").read_text()
    assert current == asyncapi.render(), (
        "docs/asyncapi.yaml is stale: run `tailwire asyncapi -o docs/asyncapi.yaml`"
    )


def test_every_subscriber_of_every_service_is_in_the_document() -> None:
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    receives = {
        name.split(".", 1)[0]
        for name, operation in document["operations"].items()
        if operation["action"] == "receive"
    }
    assert receives == {"renderer", "keyminter", "dnsupdater", "nodeagent"}  # watcher: none
    expected = 0
    for service, broker in asyncapi.service_brokers().items():
        subscribers = list(broker.subscribers)
        expected += len(subscribers)
        assert service in receives or not subscribers
    received = [o for o in document["operations"].values() if o["action"] == "receive"]
    assert len(received) == expected


def test_every_published_event_has_its_schema_and_a_subject_of_the_shared_module() -> None:
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    schemas = document["components"]["schemas"]
    for service, published in asyncapi.PUBLISHED.items():
        for item in published:
            assert item.model.__name__ in schemas
            address = item.subject.replace("node-placeholder", "*")
            assert any(
                name.startswith(f"{service}.") and channel["address"] == address
                for name, channel in document["channels"].items()
            ), (service, address)
    for service in subjects.Service:
        assert any(
            c["address"] == subjects.deadletter(service) for c in document["channels"].values()
        )


def test_subjects_md_links_the_document_and_covers_every_area() -> None:
    overview = (DOCS / "subjects.md").read_text()
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    assert "asyncapi.yaml" in overview
    areas = {c["address"].split(".")[2] for c in document["channels"].values()}
    for area in areas:
        assert f"`tailwire.v1.{area}." in overview, area


def test_the_document_is_valid_asyncapi_3() -> None:
    schema = json.loads((Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json").read_text())
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = [
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)
    ]
    assert problems == []
