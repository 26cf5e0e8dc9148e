"""Host and path templates of TailscaleGateway (`{service}.company.ts.net`).

A template may use `{service}`, `{namespace}` and `{tailnet}`; anything else in braces is an
error naming the placeholder. The seed reference was copied from a site that shows braces as
the HTML entities `&#123;`/`&#125;`; `normalize` reads those as braces so the seed manifests
validate unchanged.
"""

from __future__ import annotations

import html
import re

PLACEHOLDERS = ("service", "namespace", "tailnet")
_BRACED = re.compile(r"\{([^{}]*)\}")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 253
MAX_LABEL = 63
# Sample values used to check that a host template can form a DNS name at all.
_SAMPLE = {"service": "svc", "namespace": "ns", "tailnet": "tailnet"}


def normalize(template: str) -> str:
    """Turn `&#123;service&#125;` (and other HTML entities) into `{service}`."""
    return html.unescape(template) if "&" in template else template


def placeholders(template: str) -> list[str]:
    return _BRACED.findall(template)


def unknown_placeholders(template: str) -> list[str]:
    return [p for p in placeholders(template) if p not in PLACEHOLDERS]


def expand(template: str, *, service: str, namespace: str, tailnet: str) -> str:
    """Fill the placeholders; raises ValueError for unknown ones."""
    unknown = unknown_placeholders(template)
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; allowed: {_allowed()}")
    values = {"service": service, "namespace": namespace, "tailnet": tailnet}
    return _BRACED.sub(lambda m: values[m.group(1)], template)


def dns_name_problem(name: str) -> str | None:
    """Why `name` is not a valid DNS host name (a leading `*.` wildcard is allowed), or None."""
    host = name[2:] if name.startswith("*.") else name
    if not host:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; a DNS name has at most {MAX_NAME}"
    for label in host.rstrip(".").split("."):
        if len(label) > MAX_LABEL:
            return f"label {label[:20]!r}... is {len(label)} characters; at most {MAX_LABEL}"
        if not _LABEL.match(label):
            return f"label {label!r} is not a DNS label (lower-case a-z, 0-9, '-')"
    return None


def check_host_template(template: str) -> str | None:
    """Why a host template is unusable, or None. Checks placeholders, then the DNS shape."""
    unknown = unknown_placeholders(template)
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}}; allowed: {_allowed()}"
    if "{" in _BRACED.sub("", template) or "}" in _BRACED.sub("", template):
        return "unbalanced brace"
    if not placeholders(template) and not template.startswith("*."):
        # A fixed host would give every generated route the same name.
        return "must contain a placeholder such as {service}"
    problem = dns_name_problem(expand(template, **_SAMPLE))
    return f"does not form a DNS name: {problem}" if problem else None


def check_path_template(template: str) -> str | None:
    if not template.startswith("/"):
        return "must start with '/'"
    unknown = unknown_placeholders(template)
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}}; allowed: {_allowed()}"
    return None


def _allowed() -> str:
    return ", ".join("{" + p + "}" for p in PLACEHOLDERS)
