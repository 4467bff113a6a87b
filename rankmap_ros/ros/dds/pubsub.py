"""Publishers and subscriptions on `rt/<topic>` with the ROS QoS and typehash user data."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from rankmap_ros.ros.dds import names
from rankmap_ros.ros.dds.distro import sends_type_hash
from rankmap_ros.ros.dds.qos import QoSProfile, to_cyclone
from rankmap_ros.ros.dds.types import Message, deserialize, serialize, type_hash
from rankmap_ros.ros.dds.wire import RawSample, topic_type, wrap

if TYPE_CHECKING:
    from cyclonedds.domain import DomainParticipant

    from rankmap_ros.ros.dds.callback_groups import CallbackGroup

ANY_SAMPLE = SampleState.Any | ViewState.Any | InstanceState.Any


def type_hash_user_data(*typenames: str) -> bytes:
    """Iron and later advertise the RIHS01 type hash of every endpoint (`typehash=...;`)."""
    if not sends_type_hash():
        return b""
    return "".join(f"typehash={type_hash(t)};" for t in typenames).encode()


def delete_entity(entity: Any) -> None:
    """cyclonedds-python deletes an entity only through its finalizer; calling it twice is harmless."""
    entity.__del__()


def _topic(participant: DomainParticipant, dds_name: str, typename: str, request_header: bool = False) -> Topic:
    return Topic(participant, dds_name, topic_type(typename, request_header))


class Publisher:
    def __init__(self, participant: DomainParticipant, msg_type: type[Message], fq_name: str, qos: QoSProfile):
        self.msg_type = msg_type
        self.topic_name = fq_name
        self.qos_profile = qos
        dds_name = fq_name.lstrip("/") if qos.avoid_ros_namespace_conventions else names.topic(fq_name)
        self._wire = topic_type(msg_type._TYPE)
        self._writer = DataWriter(
            participant,
            _topic(participant, dds_name, msg_type._TYPE),
            to_cyclone(qos, type_hash_user_data(msg_type._TYPE)),
        )
        self.guid = self._writer.get_guid()

    @property
    def topic(self) -> str:
        return self.topic_name

    def publish(self, msg: Message | bytes) -> None:
        """A message of the publisher's type, or its CDR bytes (as rclpy accepts serialized data)."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            cdr = bytes(msg)
        elif isinstance(msg, self.msg_type):
            cdr = serialize(msg)
        else:
            raise TypeError(f"{self.topic_name} carries {self.msg_type._TYPE}, not {type(msg).__name__}")
        self._writer.write(wrap(self._wire, cdr))  # type: ignore[arg-type]

    def get_subscription_count(self) -> int:
        return len(self._writer.get_matched_subscriptions())

    def wait_for_all_acked(self, timeout_sec: float = -1) -> bool:
        from cyclonedds.util import duration

        timeout = duration(infinite=True) if timeout_sec < 0 else duration(seconds=timeout_sec)
        return bool(self._writer.wait_for_acks(timeout))

    def destroy(self) -> None:
        delete_entity(self._writer)


class Subscription:
    def __init__(
        self,
        participant: DomainParticipant,
        msg_type: type[Message],
        fq_name: str,
        callback: Callable[[Any], None],
        qos: QoSProfile,
        callback_group: CallbackGroup,
        raw: bool,
    ):
        self.msg_type = msg_type
        self.topic_name = fq_name
        self.callback = callback
        self.qos_profile = qos
        self.callback_group = callback_group
        self.raw = raw
        dds_name = fq_name.lstrip("/") if qos.avoid_ros_namespace_conventions else names.topic(fq_name)
        self._reader = DataReader(
            participant,
            _topic(participant, dds_name, msg_type._TYPE),
            to_cyclone(qos, type_hash_user_data(msg_type._TYPE)),
        )
        self.condition = ReadCondition(self._reader, ANY_SAMPLE)
        self.guid = self._reader.get_guid()

    @property
    def topic(self) -> str:
        return self.topic_name

    def take(self) -> Callable[[], None] | None:
        for sample in self._reader.take(1):
            if isinstance(sample, RawSample):
                msg = sample if self.raw else deserialize(sample, self.msg_type)
                return lambda: self.callback(msg)
        return None

    def get_publisher_count(self) -> int:
        return len(self._reader.get_matched_publications())

    def destroy(self) -> None:
        delete_entity(self.condition)
        delete_entity(self._reader)
