"""ROS names: validation, expansion against a node, and rmw_cyclonedds' DDS topic mangling."""

from __future__ import annotations

import re

TOPIC_PREFIX = "rt"
REQUEST_PREFIX = "rq"
REPLY_PREFIX = "rr"

_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InvalidNameError(ValueError):
    """A node, namespace, topic or service name that ROS 2 would refuse."""


def validate_node_name(name: str) -> str:
    if not _NODE_NAME.match(name):
        raise InvalidNameError(f"node name {name!r} must be letters, digits and '_', not starting with a digit")
    return name


def normalize_namespace(namespace: str) -> str:
    """'' → '/', 'robot' → '/robot'; validated like a fully qualified name."""
    text = "/" + namespace.strip("/") if namespace.strip("/") else "/"
    if text != "/":
        _validate_tokens(text, "namespace")
    return text


def _validate_tokens(fq: str, what: str) -> None:
    if not fq.startswith("/") or (fq != "/" and fq.endswith("/")) or "//" in fq:
        raise InvalidNameError(f"{what} {fq!r} is malformed")
    for token in fq.strip("/").split("/"):
        if token and not _TOKEN.match(token):
            raise InvalidNameError(f"{what} {fq!r}: {token!r} must be letters, digits and '_', not a leading digit")


def expand(name: str, node_name: str, namespace: str) -> str:
    """Fully qualified name as rcl expands it: absolute, relative to the namespace, or `~` private."""
    if not name:
        raise InvalidNameError("empty topic or service name")
    ns = normalize_namespace(namespace)
    node_fq = f"{ns.rstrip('/')}/{node_name}"
    text = name.replace("{node}", node_name).replace("{ns}", ns.rstrip("/"))
    if text == "~":
        full = node_fq
    elif text.startswith("~/"):
        full = f"{node_fq}/{text[2:]}"
    elif text.startswith("/"):
        full = text
    else:
        full = f"{ns.rstrip('/')}/{text}"
    _validate_tokens(full, "name")
    return full


def topic(fq: str) -> str:
    return f"{TOPIC_PREFIX}{fq}"


def request_topic(fq: str) -> str:
    return f"{REQUEST_PREFIX}{fq}Request"


def reply_topic(fq: str) -> str:
    return f"{REPLY_PREFIX}{fq}Reply"


def demangle_topic(dds_name: str) -> str | None:
    """The ROS topic name of a DDS topic, or None for DDS topics ROS hides."""
    return dds_name[len(TOPIC_PREFIX) :] if dds_name.startswith(f"{TOPIC_PREFIX}/") else None
