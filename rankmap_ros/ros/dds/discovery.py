"""Domain, discovery range and the ROS graph, as rmw_cyclonedds sets them up.

* `ROS_DOMAIN_ID` is the DDS domain id.
* Humble: `ROS_LOCALHOST_ONLY=1` pins Cyclone to 127.0.0.1. Jazzy: `ROS_AUTOMATIC_DISCOVERY_RANGE`
  (LOCALHOST, SUBNET, OFF; `ROS_LOCALHOST_ONLY=1` means LOCALHOST) and `ROS_STATIC_PEERS`. The XML
  is rmw's, followed by `$CYCLONEDDS_URI` so user configuration still wins.
* One participant per process with user data `enclave=/;`; its nodes and their endpoint gids are
  published on `ros_discovery_info` (reliable, transient-local, depth 1) after every change, which
  is what `ros2 node list` reads. Gids are DDS GUIDs padded to the distro's gid size.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from rankmap_ros.ros.dds.distro import HUMBLE_LIKE, distro, gid_size
from rankmap_ros.ros.dds.types import deserialize, get_message, serialize
from rankmap_ros.ros.dds.wire import RawSample, topic_type, wrap

DISCOVERY_TOPIC = "ros_discovery_info"
DISCOVERY_TYPE = "rmw_dds_common/msg/ParticipantEntitiesInfo"
PARTICIPANT_USER_DATA = b"enclave=/;"
MAX_DOMAIN_ID = 232
HANDLE_MASK = (1 << 64) - 1  # instance handles come back signed from some calls, unsigned from others


class DiscoveryConfigError(ValueError):
    """A ROS_* discovery variable with a value rmw would refuse."""


def domain_id(env: Mapping[str, str] = os.environ) -> int:
    text = env.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_DOMAIN_ID:
        raise DiscoveryConfigError(f"ROS_DOMAIN_ID={text!r} must be an integer in 0..{MAX_DOMAIN_ID}")
    return int(text)


def discovery_range(env: Mapping[str, str] = os.environ) -> str:
    """Jazzy's range; the deprecated ROS_LOCALHOST_ONLY=1 maps to LOCALHOST as in rmw."""
    text = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper()
    if text in ("", "SYSTEM_DEFAULT"):
        return "LOCALHOST" if env.get("ROS_LOCALHOST_ONLY", "") == "1" else "SUBNET"
    if text not in ("LOCALHOST", "SUBNET", "OFF"):
        raise DiscoveryConfigError(f"ROS_AUTOMATIC_DISCOVERY_RANGE={text!r} must be LOCALHOST, SUBNET, OFF")
    return text


def domain_config(env: Mapping[str, str] = os.environ, pid: int | None = None) -> str:
    """The Cyclone configuration rmw_cyclonedds would build, then the user's CYCLONEDDS_URI."""
    if distro() in HUMBLE_LIKE:
        general = (
            '<General><Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces></General>'
            if env.get("ROS_LOCALHOST_ONLY", "") == "1"
            else ""
        )
        discovery = ""
    else:
        static = [p.strip() for p in env.get("ROS_STATIC_PEERS", "").split(";") if p.strip()]
        peers = "".join(f'<Peer address="{p}"/>' for p in static)
        scope = discovery_range(env)
        if scope == "LOCALHOST":
            general = "<General><AllowMulticast>false</AllowMulticast></General>"
            discovery = (
                "<Discovery><ParticipantIndex>auto</ParticipantIndex>"
                "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>"
                f'<Peers><Peer address="localhost"/>{peers}</Peers></Discovery>'
            )
        elif scope == "OFF":
            general = "<General><AllowMulticast>false</AllowMulticast></General>"
            discovery = (
                "<Discovery><ParticipantIndex>none</ParticipantIndex>"
                f"<Tag>ros_discovery_off_{pid if pid is not None else os.getpid()}</Tag></Discovery>"
            )
        else:
            general = ""
            index = "<ParticipantIndex>auto</ParticipantIndex>"
            discovery = f"<Discovery>{index}<Peers>{peers}</Peers></Discovery>" if peers else ""
    xml = f"<CycloneDDS><Domain>{general}{discovery}</Domain></CycloneDDS>"
    user = env.get("CYCLONEDDS_URI", "").strip()
    return f"{xml},{user}" if user else xml


def gid_bytes(guid: uuid.UUID) -> bytes:
    return guid.bytes.ljust(gid_size(), b"\0")


@dataclass
class NodeEntities:
    namespace: str
    name: str
    readers: list[bytes] = field(default_factory=list)
    writers: list[bytes] = field(default_factory=list)


class Graph:
    """This process's entry in `ros_discovery_info`, and what other participants published there."""

    def __init__(self, participant: DomainParticipant) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[int, NodeEntities] = {}
        self._participant_gid = gid_bytes(participant.get_guid())
        wire = topic_type(DISCOVERY_TYPE)
        self._wire = wire
        topic = Topic(participant, DISCOVERY_TOPIC, wire)
        self._writer = DataWriter(
            participant,
            topic,
            Qos(
                Policy.Reliability.Reliable(max_blocking_time=duration(infinite=True)),
                Policy.Durability.TransientLocal,
                Policy.History.KeepLast(1),
                Policy.WriterDataLifecycle(autodispose=False),
                Policy.DataRepresentation(use_cdrv0_representation=True),
            ),
        )
        self._reader = DataReader(
            participant,
            topic,
            Qos(
                Policy.Reliability.Reliable(max_blocking_time=duration(infinite=True)),
                Policy.Durability.TransientLocal,
                Policy.History.KeepAll,
                Policy.IgnoreLocal.Participant,
                Policy.DataRepresentation(use_cdrv0_representation=True),
            ),
        )
        self._remote: dict[bytes, tuple[int, list[tuple[str, str]]]] = {}

    def add_node(self, key: int, namespace: str, name: str) -> None:
        with self._lock:
            self._nodes[key] = NodeEntities(namespace, name)
        self.publish()

    def remove_node(self, key: int) -> None:
        with self._lock:
            self._nodes.pop(key, None)
        self.publish()

    def add_endpoint(self, key: int, guid: uuid.UUID, is_reader: bool) -> None:
        with self._lock:
            node = self._nodes[key]
            (node.readers if is_reader else node.writers).append(gid_bytes(guid))
        self.publish()

    def remove_endpoint(self, key: int, guid: uuid.UUID) -> None:
        gid = gid_bytes(guid)
        with self._lock:
            node = self._nodes.get(key)
            if node is None:
                return
            node.readers = [g for g in node.readers if g != gid]
            node.writers = [g for g in node.writers if g != gid]
        self.publish()

    def message(self) -> object:
        gid_type = get_message("rmw_dds_common/msg/Gid")
        node_type = get_message("rmw_dds_common/msg/NodeEntitiesInfo")
        with self._lock:
            nodes = [
                node_type(
                    node_namespace=n.namespace,
                    node_name=n.name,
                    reader_gid_seq=[gid_type(data=g) for g in n.readers],
                    writer_gid_seq=[gid_type(data=g) for g in n.writers],
                )
                for n in self._nodes.values()
            ]
        return get_message(DISCOVERY_TYPE)(gid=gid_type(data=self._participant_gid), node_entities_info_seq=nodes)

    def publish(self) -> None:
        self._writer.write(wrap(self._wire, serialize(self.message())))  # type: ignore[arg-type]

    def node_names_and_namespaces(self) -> list[tuple[str, str]]:
        """Nodes of this process and of every live participant that announced its nodes."""
        info_type = get_message(DISCOVERY_TYPE)
        for sample in self._reader.take(1000):
            if isinstance(sample, RawSample):
                info = deserialize(sample, info_type)
                nodes = [(n.node_name, n.node_namespace) for n in info.node_entities_info_seq]  # type: ignore[attr-defined]
                self._remote[bytes(info.gid.data)] = (sample.sample_info.publication_handle & HANDLE_MASK, nodes)  # type: ignore[attr-defined]
        alive = {h & HANDLE_MASK for h in self._reader.get_matched_publications()}
        with self._lock:
            found = [(n.name, n.namespace) for n in self._nodes.values()]
        for handle, nodes in self._remote.values():
            if handle in alive:
                found.extend(nodes)
        return found
