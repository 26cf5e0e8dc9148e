"""Condition types and reasons, in one place to prevent typos (Kopf does the same)."""

from __future__ import annotations

import enum


class Type(enum.StrEnum):
    READY = "Ready"
    KEY_READY = "KeyReady"
    DEGRADED = "Degraded"
    TAILNETS_READY = "TailnetsReady"
    # EgressGroup: are its members limited to selected namespaces?
    SCOPED = "Scoped"


class Reason(enum.StrEnum):
    # Ready
    RECONCILED = "Reconciled"
    GATEWAY_CONFIGURED = "GatewayConfigured"
    INVALID_SPEC = "InvalidSpec"
    PENDING = "Pending"
    WAITING_FOR_KEY = "WaitingForKey"
    WAITING_FOR_NODES = "WaitingForNodes"
    # the gateways' word on spec.exitNode (services/nodeagent/domain/gatewayfile.py)
    EXIT_NODE_NOT_FOUND = "ExitNodeNotFound"
    EXIT_NODE_AMBIGUOUS = "ExitNodeAmbiguous"
    EXIT_NODE_NOT_OFFERED = "ExitNodeNotOffered"
    DELETING = "Deleting"
    # KeyReady
    KEY_ISSUED = "KeyIssued"
    KEY_FAILED = "KeyFailed"
    CREDENTIALS_REFUSED = "CredentialsRefused"
    # Degraded
    NODE_ERRORS = "NodeErrors"
    ROUTES_REFUSED = "RoutesRefused"
    SELECTOR_CONFLICT = "SelectorConflict"
    MEMBER_DNS_NOT_CONFIGURED = "MemberDNSNotConfigured"
    AS_EXPECTED = "AsExpected"
    # TailnetsReady (TailscaleGateway); Ready (TailscaleTailnet)
    ALL_TAILNETS_CONNECTED = "AllTailnetsConnected"
    TAILNET_NOT_FOUND = "TailnetNotFound"
    TAILNET_INVALID = "TailnetInvalid"
    TAILNET_DISCONNECTED = "TailnetDisconnected"
    CONNECTED = "Connected"
    DISCONNECTED = "Disconnected"
    PRIORITY_CONFLICT = "PriorityConflict"
    NOT_PERMITTED = "NotPermitted"  # another namespace did not consent (TailscaleGateway)
    # Scoped (EgressGroup)
    NAMESPACE_SELECTOR = "NamespaceSelector"
    ALL_NAMESPACES = "AllNamespaces"
    NOT_ENFORCED = "NotEnforced"
