"""rclpy's QoS profiles and their translation to Cyclone QoS exactly as rmw_cyclonedds does it.

`create_readwrite_qos` in rmw_cyclonedds: KEEP_LAST(depth) (system default → depth 1), system
default reliability → RELIABLE with infinite blocking, TRANSIENT_LOCAL with a durability service
history equal to the history, writers never auto-dispose, XCDR1 only, user data as given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from cyclonedds.core import Policy, Qos
from cyclonedds.util import duration

from rankmap_ros.ros.dds.time import Duration


class HistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2
    UNKNOWN = 3


class ReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2
    UNKNOWN = 3
    BEST_AVAILABLE = 4


class DurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2
    UNKNOWN = 3
    BEST_AVAILABLE = 4


class LivelinessPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    AUTOMATIC = 1
    MANUAL_BY_TOPIC = 3
    UNKNOWN = 4
    BEST_AVAILABLE = 5


UNSPECIFIED = Duration()


@dataclass(frozen=True, kw_only=True)
class QoSProfile:
    """Like rclpy's: give a history or a depth (`QoSProfile(depth=10)` is reliable and volatile)."""

    history: HistoryPolicy = HistoryPolicy.KEEP_LAST
    depth: int = 0
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE
    lifespan: Duration = UNSPECIFIED
    deadline: Duration = UNSPECIFIED
    liveliness: LivelinessPolicy = LivelinessPolicy.SYSTEM_DEFAULT
    liveliness_lease_duration: Duration = UNSPECIFIED
    avoid_ros_namespace_conventions: bool = False

    def __post_init__(self) -> None:
        if self.history == HistoryPolicy.KEEP_LAST and self.depth <= 0:
            raise ValueError("a KEEP_LAST QoSProfile needs depth >= 1")
        if self.depth < 0:
            raise ValueError("depth cannot be negative")


qos_profile_system_default = QoSProfile(
    history=HistoryPolicy.SYSTEM_DEFAULT,
    reliability=ReliabilityPolicy.SYSTEM_DEFAULT,
    durability=DurabilityPolicy.SYSTEM_DEFAULT,
)
qos_profile_default = QoSProfile(depth=10)
qos_profile_sensor_data = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
qos_profile_services_default = QoSProfile(depth=10)
qos_profile_parameters = QoSProfile(depth=1000)
qos_profile_parameter_events = QoSProfile(depth=1000)
qos_profile_rosout_default = QoSProfile(
    depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL, lifespan=Duration(seconds=10)
)


class QoSPresetProfiles:
    DEFAULT = qos_profile_default
    SYSTEM_DEFAULT = qos_profile_system_default
    SENSOR_DATA = qos_profile_sensor_data
    SERVICES_DEFAULT = qos_profile_services_default
    PARAMETERS = qos_profile_parameters
    PARAMETER_EVENTS = qos_profile_parameter_events


def as_profile(qos: QoSProfile | int) -> QoSProfile:
    """rclpy accepts a bare depth wherever a profile goes."""
    return QoSProfile(depth=qos) if isinstance(qos, int) else qos


def keep_last(profile: QoSProfile, depth: int) -> QoSProfile:
    return replace(profile, history=HistoryPolicy.KEEP_LAST, depth=depth)


def _ns(value: Duration) -> int:
    return value.nanoseconds


def to_cyclone(profile: QoSProfile, user_data: bytes = b"") -> Qos:
    """The Cyclone QoS rmw_cyclonedds would create for a reader or writer with this profile."""
    history = (
        Policy.History.KeepAll
        if profile.history == HistoryPolicy.KEEP_ALL
        else Policy.History.KeepLast(profile.depth if profile.history == HistoryPolicy.KEEP_LAST else 1)
    )
    policies = [
        history,
        Policy.Reliability.BestEffort
        if profile.reliability == ReliabilityPolicy.BEST_EFFORT
        else Policy.Reliability.Reliable(max_blocking_time=duration(infinite=True)),
        Policy.WriterDataLifecycle(autodispose=False),
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL:
        policies.append(Policy.Durability.TransientLocal)
        policies.append(
            Policy.DurabilityService(
                cleanup_delay=0, history=history, max_samples=-1, max_instances=-1, max_samples_per_instance=-1
            )
        )
    else:
        policies.append(Policy.Durability.Volatile)
    if profile.deadline != UNSPECIFIED:
        policies.append(Policy.Deadline(_ns(profile.deadline)))
    if profile.lifespan != UNSPECIFIED:
        policies.append(Policy.Lifespan(_ns(profile.lifespan)))
    if profile.liveliness_lease_duration != UNSPECIFIED or profile.liveliness == LivelinessPolicy.MANUAL_BY_TOPIC:
        lease = (
            _ns(profile.liveliness_lease_duration)
            if profile.liveliness_lease_duration != UNSPECIFIED
            else duration(infinite=True)
        )
        kind = (
            Policy.Liveliness.ManualByTopic
            if profile.liveliness == LivelinessPolicy.MANUAL_BY_TOPIC
            else Policy.Liveliness.Automatic
        )
        policies.append(kind(lease_duration=lease))
    if user_data:
        policies.append(Policy.Userdata(data=user_data))
    return Qos(*policies)
