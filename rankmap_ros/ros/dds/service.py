"""Services and clients exactly as rmw_cyclonedds carries them.

* The client writes `rq/<service>Request` and reads `rr/<service>Reply`; both payloads start with
  the in-band header (client guid = the request writer's instance handle, sequence number from a
  process-wide counter).
* Every client of a service receives every reply; a reply is kept only when its guid is ours
  ("reply filtering"), and matched to its Future by sequence number.
* Endpoints carry `clientid=`/`serviceid=` user data. A server waits up to 100 ms for the calling
  client's reply reader to match before answering; a client is ready when its request writer and
  reply reader are matched to the same service (same `serviceid`).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cyclonedds.core import Policy, ReadCondition
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from rankmap_ros.ros.dds import names
from rankmap_ros.ros.dds.pubsub import ANY_SAMPLE, delete_entity, type_hash_user_data
from rankmap_ros.ros.dds.qos import QoSProfile, to_cyclone
from rankmap_ros.ros.dds.task import Future
from rankmap_ros.ros.dds.types import Service as ServiceType
from rankmap_ros.ros.dds.types import deserialize, serialize
from rankmap_ros.ros.dds.wire import RawSample, add_request_header, split_request_header, topic_type, wrap

if TYPE_CHECKING:
    from cyclonedds.domain import DomainParticipant

    from rankmap_ros.ros.dds.callback_groups import CallbackGroup
    from rankmap_ros.ros.dds.logging import RcutilsLogger

REPLY_MATCH_WAIT_S = 0.1
REPLY_HISTORY_DEPTH = 256
HANDLE_MASK = (1 << 64) - 1
_sequence = itertools.count(1)
_sequence_lock = threading.Lock()
_endpoint_counter = itertools.count(1)


def _endpoint_id(participant: DomainParticipant) -> str:
    """rmw's id: 12-byte participant GUID prefix + 4-byte counter, printed '%02x' then '.%x' per byte."""
    raw = participant.get_guid().bytes[:12] + next(_endpoint_counter).to_bytes(4, "big")
    return f"{raw[0]:02x}" + "".join(f".{b:x}" for b in raw[1:])


def _user_data_value(qos: Any, key: str) -> str | None:
    if qos is None or Policy.Userdata not in qos:
        return None
    text = bytes(qos[Policy.Userdata].data).decode("utf-8", "replace")
    for item in text.split(";"):
        name, _, value = item.partition("=")
        if name == key:
            return value
    return None


def _endpoints(participant: DomainParticipant, fq_name: str, srv_type: type[ServiceType]) -> tuple[Topic, Topic]:
    request = Topic(participant, names.request_topic(fq_name), topic_type(srv_type.Request._TYPE, True))
    reply = Topic(participant, names.reply_topic(fq_name), topic_type(srv_type.Response._TYPE, True))
    return request, reply


class Service:
    def __init__(
        self,
        participant: DomainParticipant,
        srv_type: type[ServiceType],
        fq_name: str,
        callback: Callable[[Any, Any], Any],
        qos: QoSProfile,
        callback_group: CallbackGroup,
        logger: RcutilsLogger,
    ):
        self.srv_type = srv_type
        self.srv_name = fq_name
        self.callback = callback
        self.qos_profile = qos
        self.callback_group = callback_group
        self._logger = logger
        service_id = f"serviceid={_endpoint_id(participant)};".encode()
        request_topic, reply_topic = _endpoints(participant, fq_name, srv_type)
        self._reader = DataReader(
            participant, request_topic, to_cyclone(qos, service_id + type_hash_user_data(srv_type.Request._TYPE))
        )
        self._writer = DataWriter(
            participant, reply_topic, to_cyclone(qos, service_id + type_hash_user_data(srv_type.Response._TYPE))
        )
        self._reply_wire = topic_type(srv_type.Response._TYPE, True)
        self._matched_clients: set[str] = set()
        self.condition = ReadCondition(self._reader, ANY_SAMPLE)
        self.reader_guid = self._reader.get_guid()
        self.writer_guid = self._writer.get_guid()

    def take(self) -> Callable[[], None] | None:
        for sample in self._reader.take(1):
            if isinstance(sample, RawSample):
                guid, sequence, body = split_request_header(sample)
                request = deserialize(body, self.srv_type.Request)
                handle = sample.sample_info.publication_handle
                return lambda: self._serve(guid, sequence, request, handle)
        return None

    def _serve(self, guid: int, sequence: int, request: Any, publication_handle: int) -> None:
        response = self.callback(request, self.srv_type.Response())
        if not isinstance(response, self.srv_type.Response):
            got = type(response).__name__
            raise TypeError(f"the callback of service {self.srv_name} returned {got}, not a Response")
        self._wait_for_reply_reader(publication_handle)
        payload = add_request_header(serialize(response), guid, sequence)
        self._writer.write(wrap(self._reply_wire, payload))  # type: ignore[arg-type]

    def _wait_for_reply_reader(self, publication_handle: int) -> None:
        """rmw_cyclonedds waits up to 100 ms for the caller's reply reader, found by its clientid."""
        try:
            client_id = _user_data_value(self._reader.get_matched_publication_data(publication_handle).qos, "clientid")
        except Exception:  # the client left between request and reply
            return
        if client_id is None or client_id in self._matched_clients:
            return
        deadline = time.monotonic() + REPLY_MATCH_WAIT_S
        while time.monotonic() < deadline:
            for handle in self._writer.get_matched_subscriptions():
                data = self._writer.get_matched_subscription_data(handle)
                if data is not None and _user_data_value(data.qos, "clientid") == client_id:
                    self._matched_clients.add(client_id)
                    return
            time.sleep(0.001)

    def destroy(self) -> None:
        delete_entity(self.condition)
        delete_entity(self._reader)
        delete_entity(self._writer)


class Client:
    def __init__(
        self,
        participant: DomainParticipant,
        srv_type: type[ServiceType],
        fq_name: str,
        qos: QoSProfile,
        callback_group: CallbackGroup,
        context_ok: Callable[[], bool],
    ):
        self.srv_type = srv_type
        self.srv_name = fq_name
        self.qos_profile = qos
        self.callback_group = callback_group
        self._context_ok = context_ok
        client_id = f"clientid={_endpoint_id(participant)};".encode()
        request_topic, reply_topic = _endpoints(participant, fq_name, srv_type)
        self._writer = DataWriter(
            participant, request_topic, to_cyclone(qos, client_id + type_hash_user_data(srv_type.Request._TYPE))
        )
        # Every client of a service reads every reply and keeps its own (reply filtering), so a
        # busy service can push a starved client's reply out of a 10-deep history. History is
        # local to the reader (not part of QoS matching): keep more.
        reply_qos = dataclasses.replace(qos, depth=max(qos.depth, REPLY_HISTORY_DEPTH))
        self._reader = DataReader(
            participant, reply_topic, to_cyclone(reply_qos, client_id + type_hash_user_data(srv_type.Response._TYPE))
        )
        self._request_wire = topic_type(srv_type.Request._TYPE, True)
        self._guid = self._writer.get_instance_handle() & HANDLE_MASK
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self.condition = ReadCondition(self._reader, ANY_SAMPLE)
        self.reader_guid = self._reader.get_guid()
        self.writer_guid = self._writer.get_guid()

    def call_async(self, request: Any) -> Future:
        if not isinstance(request, self.srv_type.Request):
            raise TypeError(f"{self.srv_name} takes {self.srv_type.Request._TYPE}, not {type(request).__name__}")
        with _sequence_lock:
            sequence = next(_sequence)
        future = Future()
        with self._lock:
            self._pending[sequence] = future
        payload = add_request_header(serialize(request), self._guid, sequence)
        self._writer.write(wrap(self._request_wire, payload))  # type: ignore[arg-type]
        return future

    def call(self, request: Any, timeout_sec: float | None = None) -> Any:
        """Blocks until another thread's executor delivers the reply; None on timeout."""
        future = self.call_async(request)
        if not future.wait(timeout_sec):
            self.remove_pending_request(future)
            return None
        return future.result()

    def remove_pending_request(self, future: Future) -> None:
        with self._lock:
            for sequence, pending in list(self._pending.items()):
                if pending is future:
                    del self._pending[sequence]

    def take(self) -> Callable[[], None] | None:
        """Reply filtering: replies to other clients of the service are taken and dropped.

        A reply is work for the executor, as in rclpy: completing its future is the callback, so
        `spin_once` returns once a reply is in (the caller is typically waiting for it).
        """
        for sample in self._reader.take(1):
            if not isinstance(sample, RawSample):
                continue
            guid, sequence, body = split_request_header(sample)
            if guid != self._guid:
                continue
            with self._lock:
                future = self._pending.pop(sequence, None)
            if future is not None:
                response = deserialize(body, self.srv_type.Response)
                return lambda: future.set_result(response)
        return None

    def service_is_ready(self) -> bool:
        readers = self._writer.get_matched_subscriptions()
        writers = self._reader.get_matched_publications()
        if not readers or not writers:
            return False
        wanted = {_user_data_value(self._matched_qos(self._writer, h, True), "serviceid") for h in readers} - {None}
        if not wanted:
            return True
        offered = {_user_data_value(self._matched_qos(self._reader, h, False), "serviceid") for h in writers}
        return bool(wanted & offered)

    @staticmethod
    def _matched_qos(entity: Any, handle: int, subscription: bool) -> Any:
        lookup = entity.get_matched_subscription_data if subscription else entity.get_matched_publication_data
        data = lookup(handle)
        return None if data is None else data.qos

    def wait_for_service(self, timeout_sec: float | None = None) -> bool:
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while self._context_ok():
            if self.service_is_ready():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return False

    def destroy(self) -> None:
        delete_entity(self.condition)
        delete_entity(self._reader)
        delete_entity(self._writer)
