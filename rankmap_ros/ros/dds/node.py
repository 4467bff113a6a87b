"""rclpy's Node over Cyclone DDS: endpoints, timers, parameters, logging, clock, graph."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rankmap_ros.ros.dds import logging as ros_logging
from rankmap_ros.ros.dds import names
from rankmap_ros.ros.dds.callback_groups import CallbackGroup, MutuallyExclusiveCallbackGroup
from rankmap_ros.ros.dds.context import Context, get_default_context
from rankmap_ros.ros.dds.logging import RcutilsLogger
from rankmap_ros.ros.dds.parameter_service import ParameterService, list_names
from rankmap_ros.ros.dds.parameters import (
    OnSet,
    Parameter,
    ParameterDescriptor,
    ParameterNotDeclaredException,
    ParameterStore,
)
from rankmap_ros.ros.dds.pubsub import Publisher, Subscription
from rankmap_ros.ros.dds.qos import (
    QoSProfile,
    as_profile,
    qos_profile_parameter_events,
    qos_profile_rosout_default,
    qos_profile_services_default,
)
from rankmap_ros.ros.dds.service import Client, Service
from rankmap_ros.ros.dds.time import Clock, ROSClock
from rankmap_ros.ros.dds.time_source import TimeSource
from rankmap_ros.ros.dds.timer import GuardCondition, Timer
from rankmap_ros.ros.dds.types import Message, get_message
from rankmap_ros.ros.dds.types import Service as ServiceType

LOG = "rcl_interfaces/msg/Log"


class Node:
    def __init__(
        self,
        node_name: str,
        *,
        context: Context | None = None,
        cli_args: Sequence[str] | None = None,
        namespace: str | None = None,
        use_global_arguments: bool = True,
        enable_rosout: bool = True,
        start_parameter_services: bool = True,
        parameter_overrides: Sequence[Parameter] | None = None,
        allow_undeclared_parameters: bool = False,
        automatically_declare_parameters_from_overrides: bool = False,
    ) -> None:
        from rankmap_ros.ros.dds.args import RosArgs, parse

        self.context = context or get_default_context()
        self._participant = self.context.require_participant()
        global_args = self.context.args if use_global_arguments else RosArgs()
        local_args = parse(["--ros-args", *cli_args]) if cli_args and cli_args[0] != "--ros-args" else parse(cli_args)
        self._args = RosArgs(
            overrides=global_args.overrides + local_args.overrides,
            remaps=global_args.remaps + local_args.remaps,
            rosout=global_args.rosout and local_args.rosout,
        )
        name = names.validate_node_name(self._args.node_name(node_name))
        self._name = name
        self._namespace = names.normalize_namespace(self._args.namespace(name, namespace or ""))
        overrides = self._args.parameters_for(name, self.get_fully_qualified_name())
        overrides.update({p.name: p.value for p in parameter_overrides or []})
        self._parameters = ParameterStore(overrides, allow_undeclared_parameters)
        self._logger = RcutilsLogger(f"{self._namespace.strip('/').replace('/', '.')}.{name}".lstrip("."))
        self._clock = ROSClock()
        self.default_callback_group: CallbackGroup = MutuallyExclusiveCallbackGroup()
        self.publishers: list[Publisher] = []
        self.subscriptions: list[Subscription] = []
        self.services: list[Service] = []
        self.clients: list[Client] = []
        self.timers: list[Timer] = []
        self.guards: list[GuardCondition] = []
        self.executor: Any = None
        self._graph = self.context.graph
        assert self._graph is not None
        self._graph.add_node(id(self), self._namespace, name)
        self._parameter_events = self.create_publisher(
            get_message("rcl_interfaces/msg/ParameterEvent"), "/parameter_events", qos_profile_parameter_events
        )
        if start_parameter_services:
            ParameterService(self)
        if automatically_declare_parameters_from_overrides:
            for key, value in overrides.items():
                self.declare_parameter(key, value)
        self._time_source = TimeSource(self, self._clock)
        self._rosout: Publisher | None = None
        if enable_rosout and self._args.rosout:
            self._rosout = self.create_publisher(get_message(LOG), "/rosout", qos_profile_rosout_default)
            ros_logging.add_rosout_sink(self._logger.name, self._publish_log)

    def _publish_log(self, record: ros_logging.LogRecord) -> None:
        rosout = self._rosout  # once: destroy_node may clear it from another thread
        if rosout is None:
            return
        seconds, nanoseconds = divmod(record.stamp_ns, 1_000_000_000)
        rosout.publish(
            get_message(LOG)(
                stamp=get_message("builtin_interfaces/msg/Time")(sec=seconds, nanosec=nanoseconds),
                level=int(record.severity),
                name=record.name,
                msg=record.message,
                file=record.file,
                function=record.function,
                line=record.line,
            )
        )

    # --- identity, logging, clock -----------------------------------------------------------

    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return f"{self._namespace.rstrip('/')}/{self._name}"

    def get_logger(self) -> RcutilsLogger:
        return self._logger

    def get_clock(self) -> Clock:
        return self._clock

    def resolve_topic_name(self, topic: str, *, only_expand: bool = False) -> str:
        fq = names.expand(topic, self._name, self._namespace)
        return fq if only_expand else self._args.remap(fq, self._name, self._namespace)

    resolve_service_name = resolve_topic_name

    # --- endpoints ----------------------------------------------------------------------------

    def _changed(self) -> None:
        if self.executor is not None:
            self.executor.wake()

    def create_publisher(
        self, msg_type: type[Message], topic: str, qos_profile: QoSProfile | int, **_: Any
    ) -> Publisher:
        publisher = Publisher(self._participant, msg_type, self.resolve_topic_name(topic), as_profile(qos_profile))
        self.publishers.append(publisher)
        self._graph.add_endpoint(id(self), publisher.guid, is_reader=False)  # type: ignore[union-attr]
        return publisher

    def create_subscription(
        self,
        msg_type: type[Message],
        topic: str,
        callback: Callable[[Any], None],
        qos_profile: QoSProfile | int,
        *,
        callback_group: CallbackGroup | None = None,
        raw: bool = False,
        **_: Any,
    ) -> Subscription:
        subscription = Subscription(
            self._participant,
            msg_type,
            self.resolve_topic_name(topic),
            callback,
            as_profile(qos_profile),
            callback_group or self.default_callback_group,
            raw,
        )
        self.subscriptions.append(subscription)
        self._graph.add_endpoint(id(self), subscription.guid, is_reader=True)  # type: ignore[union-attr]
        self._changed()
        return subscription

    def create_service(
        self,
        srv_type: type[ServiceType],
        srv_name: str,
        callback: Callable[[Any, Any], Any],
        *,
        qos_profile: QoSProfile = qos_profile_services_default,
        callback_group: CallbackGroup | None = None,
    ) -> Service:
        service = Service(
            self._participant,
            srv_type,
            self.resolve_service_name(srv_name),
            callback,
            qos_profile,
            callback_group or self.default_callback_group,
            self._logger,
        )
        self.services.append(service)
        self._graph.add_endpoint(id(self), service.reader_guid, is_reader=True)  # type: ignore[union-attr]
        self._graph.add_endpoint(id(self), service.writer_guid, is_reader=False)  # type: ignore[union-attr]
        self._changed()
        return service

    def create_client(
        self,
        srv_type: type[ServiceType],
        srv_name: str,
        *,
        qos_profile: QoSProfile = qos_profile_services_default,
        callback_group: CallbackGroup | None = None,
    ) -> Client:
        client = Client(
            self._participant,
            srv_type,
            self.resolve_service_name(srv_name),
            qos_profile,
            callback_group or self.default_callback_group,
            self.context.ok,
        )
        self.clients.append(client)
        self._graph.add_endpoint(id(self), client.reader_guid, is_reader=True)  # type: ignore[union-attr]
        self._graph.add_endpoint(id(self), client.writer_guid, is_reader=False)  # type: ignore[union-attr]
        self._changed()
        return client

    def create_timer(
        self,
        timer_period_sec: float,
        callback: Callable[[], None],
        callback_group: CallbackGroup | None = None,
        clock: Clock | None = None,
        autostart: bool = True,
    ) -> Timer:
        group = callback_group or self.default_callback_group
        timer = Timer(callback, timer_period_sec, group, clock or self._clock, autostart)
        self.timers.append(timer)
        self._changed()
        return timer

    def create_guard_condition(
        self, callback: Callable[[], None], callback_group: CallbackGroup | None = None
    ) -> GuardCondition:
        guard = GuardCondition(self._participant, callback, callback_group or self.default_callback_group)
        self.guards.append(guard)
        self._changed()
        return guard

    @property
    def waitables(self) -> list[Any]:
        """Everything the executor waits on for this node."""
        return [*self.subscriptions, *self.services, *self.clients, *self.timers, *self.guards]

    def _destroy(self, entity: Any, registry: list[Any], guids: Sequence[Any]) -> bool:
        if entity not in registry:
            return False
        registry.remove(entity)
        for guid in guids:
            self._graph.remove_endpoint(id(self), guid)  # type: ignore[union-attr]
        self._changed()
        entity.destroy()
        return True

    def destroy_publisher(self, publisher: Publisher) -> bool:
        return self._destroy(publisher, self.publishers, [publisher.guid])

    def destroy_subscription(self, subscription: Subscription) -> bool:
        return self._destroy(subscription, self.subscriptions, [subscription.guid])

    def destroy_service(self, service: Service) -> bool:
        return self._destroy(service, self.services, [service.reader_guid, service.writer_guid])

    def destroy_client(self, client: Client) -> bool:
        return self._destroy(client, self.clients, [client.reader_guid, client.writer_guid])

    def destroy_timer(self, timer: Timer) -> bool:
        return self._destroy(timer, self.timers, [])

    def destroy_guard_condition(self, guard: GuardCondition) -> bool:
        return self._destroy(guard, self.guards, [])

    def destroy_node(self) -> None:
        if self._rosout is not None:
            ros_logging.remove_rosout_sink(self._logger.name, self._publish_log)
            self._rosout = None
        if self.executor is not None:
            self.executor.remove_node(self)
        for entity in [*self.subscriptions, *self.services, *self.clients, *self.publishers, *self.guards]:
            entity.destroy()
        for timer in self.timers:
            timer.destroy()
        self.publishers, self.subscriptions, self.services, self.clients = [], [], [], []
        self.timers, self.guards = [], []
        self._graph.remove_node(id(self))  # type: ignore[union-attr]

    # --- graph --------------------------------------------------------------------------------

    def get_node_names_and_namespaces(self) -> list[tuple[str, str]]:
        return self._graph.node_names_and_namespaces()  # type: ignore[union-attr]

    def get_node_names(self) -> list[str]:
        return [name for name, _ in self.get_node_names_and_namespaces()]

    # --- parameters ---------------------------------------------------------------------------

    def _parameters_event(self, new: list[Parameter], changed: list[Parameter], deleted: list[Parameter]) -> None:
        """What rqt_reconfigure and `ros2 param` watchers follow; a parameter without a value is NOT_SET there."""
        stamp_ns = time.time_ns()

        def as_msgs(group: list[Parameter]) -> list[Any]:
            unset = Parameter.Type.NOT_SET
            return [(p if p.value is not None else Parameter(p.name, unset)).to_parameter_msg() for p in group]

        self._parameter_events.publish(
            get_message("rcl_interfaces/msg/ParameterEvent")(
                stamp=get_message("builtin_interfaces/msg/Time")(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                node=self.get_fully_qualified_name(),
                new_parameters=as_msgs(new),
                changed_parameters=as_msgs(changed),
                deleted_parameters=as_msgs(deleted),
            )
        )

    def declare_parameter(
        self, name: str, value: Any = None, descriptor: Any = None, ignore_override: bool = False
    ) -> Parameter:
        parameter = self._parameters.declare(name, value, descriptor, ignore_override)
        self._parameters_event([parameter], [], [])
        return parameter

    def declare_parameters(
        self, namespace: str, parameters: Sequence[tuple[Any, ...]], ignore_override: bool = False
    ) -> list[Parameter]:
        declared = []
        for entry in parameters:
            name, value, descriptor = (*entry, None, None)[:3]
            full = f"{namespace}.{name}" if namespace else name
            declared.append(self.declare_parameter(full, value, descriptor, ignore_override))
        return declared

    def undeclare_parameter(self, name: str) -> None:
        self._parameters.get(name)
        parameter = self._parameters.values.pop(name)
        self._parameters.descriptors.pop(name, None)
        self._parameters_event([], [], [parameter])

    def has_parameter(self, name: str) -> bool:
        return name in self._parameters.values

    def get_parameter(self, name: str) -> Parameter:
        return self._parameters.get(name)

    def get_parameter_or(self, name: str, alternative_value: Parameter | None = None) -> Parameter:
        if name in self._parameters.values:
            return self._parameters.get(name)
        return alternative_value if alternative_value is not None else Parameter(name, Parameter.Type.NOT_SET)

    def get_parameters(self, names_: Sequence[str]) -> list[Parameter]:
        return [self.get_parameter(n) for n in names_]

    def get_parameters_by_prefix(self, prefix: str) -> dict[str, Parameter]:
        start = f"{prefix}." if prefix else ""
        return {n[len(start) :]: p for n, p in self._parameters.values.items() if n.startswith(start)}

    def set_parameters(self, parameter_list: Sequence[Parameter]) -> list[Any]:
        return [self.set_parameters_atomically([parameter]) for parameter in parameter_list]

    def set_parameters_atomically(self, parameter_list: Sequence[Parameter]) -> Any:
        before = {name for name, p in self._parameters.values.items() if p.value is not None}  # else new, as in rclpy
        result = self._parameters.set_atomically(parameter_list)
        if result.successful:
            now = [self._parameters.values[p.name] for p in parameter_list]
            self._parameters_event([p for p in now if p.name not in before], [p for p in now if p.name in before], [])
        return result

    def describe_parameter(self, name: str) -> Any:
        if name not in self._parameters.values:
            if self._parameters.allow_undeclared:
                return ParameterDescriptor(name=name, dynamic_typing=True)
            raise ParameterNotDeclaredException(f"parameter {name!r} is not declared")
        return self._parameters.descriptors[name]

    def describe_parameters(self, names_: Sequence[str]) -> list[Any]:
        return [self.describe_parameter(name) for name in names_]

    def get_parameter_type(self, name: str) -> Parameter.Type:
        if name not in self._parameters.values:
            if self._parameters.allow_undeclared:
                return Parameter.Type.NOT_SET
            raise ParameterNotDeclaredException(f"parameter {name!r} is not declared")
        return self._parameters.values[name].type_

    def get_parameter_types(self, names_: Sequence[str]) -> list[Parameter.Type]:
        return [self.get_parameter_type(name) for name in names_]

    def list_parameters(self, prefixes: Sequence[str], depth: int) -> Any:
        names_, found = list_names(list(self._parameters.values), list(prefixes), depth)
        return get_message("rcl_interfaces/msg/ListParametersResult")(names=names_, prefixes=found)

    def add_on_set_parameters_callback(self, callback: OnSet) -> None:
        self._parameters.callbacks.insert(0, callback)

    def remove_on_set_parameters_callback(self, callback: OnSet) -> None:
        self._parameters.callbacks.remove(callback)
