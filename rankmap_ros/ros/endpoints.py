"""Names of the manager's services and topics, shared by the manager node and its clients."""

from __future__ import annotations

NAMESPACE = "/rankmap"

REGISTER_SERVICE = f"{NAMESPACE}/register"
UNREGISTER_SERVICE = f"{NAMESPACE}/unregister"
SET_PRIORITIES_SERVICE = f"{NAMESPACE}/set_priorities"
STATUS_SERVICE = f"{NAMESPACE}/status"

MAPPING_TOPIC = f"{NAMESPACE}/mapping"
THROUGHPUT_TOPIC = f"{NAMESPACE}/throughput"
DIAGNOSTICS_TOPIC = "/diagnostics"

REGISTER_TYPE = "rankmap_ros/srv/RegisterDnn"
UNREGISTER_TYPE = "rankmap_ros/srv/UnregisterDnn"
SET_PRIORITIES_TYPE = "rankmap_ros/srv/SetPriorities"
STATUS_TYPE = "rankmap_ros/srv/GetStatus"
MAPPING_TYPE = "rankmap_ros/msg/MappingState"
THROUGHPUT_TYPE = "std_msgs/msg/Float64MultiArray"
