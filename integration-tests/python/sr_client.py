#!/usr/bin/env python3
"""Confluent's Python client, as a small CLI for Rivulet's interop tests.

Run it with the venv that ``scripts/pyclient.sh`` makes
(``scripts/pyclient.sh run SUBCOMMAND ...``); see README.md in this folder.

  produce   JSON lines on stdin -> records (Avro / Protobuf / JSON Schema / raw values)
  consume   records -> JSON lines on stdout
  register  register a schema under a subject, print its id

Exit codes: 0 ok, 1 failure (including a consume timeout), 2 registry refused
a registration, 64 bad usage / input.
"""

import argparse
import atexit
import base64
import datetime
import decimal
import importlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

USAGE_EXIT = 64
SCHEMA_TYPES = {"avro": "AVRO", "protobuf": "PROTOBUF", "json": "JSON"}
# Subject "<topic>-value", set explicitly: newer clients first ask the registry for
# "associations" of the topic (GET /associations/..., which Karapace answers 404).
TOPIC_STRATEGY = {"subject.name.strategy": topic_subject_name_strategy}


def fail(message, code=1):
    print(f"sr_client: {message}", file=sys.stderr)
    sys.exit(code)


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        fail(f"cannot read schema file: {e}", USAGE_EXIT)


# --- Protobuf: compile the .proto at run time --------------------------------

_IMPORT_RE = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)


def _local_protos(root_dir, rel_path, seen):
    """rel_path and the files it imports (transitively) that exist under root_dir."""
    if rel_path in seen:
        return
    seen.append(rel_path)
    text = read_text(os.path.join(root_dir, rel_path))
    for imported in _IMPORT_RE.findall(text):
        if os.path.isfile(os.path.join(root_dir, imported)):
            _local_protos(root_dir, imported, seen)


def load_proto_message(schema_file, message_name):
    """Compiles schema_file (and the local files it imports) with grpc_tools' protoc
    into a temporary folder, imports the generated module and returns the message
    class named message_name (simple, nested `Outer.Inner` or fully qualified);
    without a name, the file's first message."""
    from grpc_tools import protoc  # noqa: PLC0415 (only protobuf needs it)

    schema_file = os.path.abspath(schema_file)
    root_dir, rel_path = os.path.dirname(schema_file), os.path.basename(schema_file)
    files = []
    _local_protos(root_dir, rel_path, files)
    out_dir = tempfile.mkdtemp(prefix="sr_client_proto_")
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    sys.dont_write_bytecode = True
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{root_dir}", f"-I{well_known}", f"--python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        fail(f"protoc could not compile {schema_file}", USAGE_EXIT)
    sys.path.insert(0, out_dir)
    module_name = rel_path[: -len(".proto")] if rel_path.endswith(".proto") else rel_path
    module = importlib.import_module(module_name.replace("-", "_").replace("/", ".") + "_pb2")

    file_desc = module.DESCRIPTOR
    if not message_name:
        if not file_desc.message_types_by_name:
            fail(f"{schema_file} defines no message", USAGE_EXIT)
        message_name = next(iter(file_desc.message_types_by_name))
    package = file_desc.package
    if package and message_name.startswith(package + "."):
        message_name = message_name[len(package) + 1 :]
    obj = module
    for part in message_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            known = ", ".join(file_desc.message_types_by_name) or "none"
            fail(f"no message {message_name!r} in {schema_file} (top-level messages: {known})", USAGE_EXIT)
    return obj


# --- produce -----------------------------------------------------------------


def value_serializer(args, client):
    """A function (value, SerializationContext) -> bytes for --format."""
    fmt = args.format
    if fmt == "raw":
        def raw(value, _ctx):
            if isinstance(value, str):
                return value.encode("utf-8")
            return json.dumps(value, separators=(",", ":")).encode("utf-8")
        return raw
    if not args.schema_file:
        fail(f"--schema-file is needed for --format {fmt}", USAGE_EXIT)
    conf = {"auto.register.schemas": True, **TOPIC_STRATEGY}
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: PLC0415

        return AvroSerializer(client, read_text(args.schema_file), conf=conf)
    if fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer  # noqa: PLC0415

        return JSONSerializer(read_text(args.schema_file), client, conf=conf)
    if fmt == "protobuf":
        from google.protobuf.json_format import ParseDict  # noqa: PLC0415
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: PLC0415

        msg_type = load_proto_message(args.schema_file, args.proto_message)
        serializer = ProtobufSerializer(msg_type, client, conf={**conf, "use.deprecated.format": False})

        def proto(value, ctx):
            return serializer(ParseDict(value, msg_type()), ctx)
        return proto
    fail(f"unknown format {fmt}", USAGE_EXIT)


def cmd_produce(args):
    client = SchemaRegistryClient({"url": args.registry}) if args.format != "raw" else None
    serialize_value = value_serializer(args, client)
    serialize_key = StringSerializer("utf_8")
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    })
    errors = []
    delivered = [0]

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[0] += 1

    key_ctx = SerializationContext(args.topic, MessageField.KEY)
    value_ctx = SerializationContext(args.topic, MessageField.VALUE)
    count = 0
    for line_no, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            fail(f"stdin line {line_no}: not JSON: {e}", USAGE_EXIT)
        if not isinstance(record, dict):
            fail(f"stdin line {line_no}: expected a JSON object", USAGE_EXIT)
        key = record.get("key")
        key_bytes = None if key is None else serialize_key(str(key), key_ctx)
        if record.get("raw_value_b64") is not None:
            try:
                value_bytes = base64.b64decode(record["raw_value_b64"], validate=True)
            except ValueError as e:
                fail(f"stdin line {line_no}: raw_value_b64 is not base64: {e}", USAGE_EXIT)
        elif record.get("value") is None:
            value_bytes = None  # tombstone
        else:
            try:
                value_bytes = serialize_value(record["value"], value_ctx)
            except SchemaRegistryError as e:
                fail(f"stdin line {line_no}: registry refused the schema: {e}", 2)
            except Exception as e:  # noqa: BLE001 (serializers raise many kinds)
                fail(f"stdin line {line_no}: cannot serialize value: {type(e).__name__}: {e}")
        kwargs = {"key": key_bytes, "value": value_bytes, "on_delivery": on_delivery}
        if record.get("timestamp") is not None:
            kwargs["timestamp"] = int(record["timestamp"])
        while True:
            try:
                producer.produce(args.topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    if remaining:
        fail(f"{remaining} records not delivered within 60 s")
    if errors:
        fail(f"{len(errors)} records failed: {errors[0]}")
    print(f"produced {delivered[0]} records to {args.topic}", file=sys.stderr)


# --- consume -----------------------------------------------------------------


def value_deserializer(args, client):
    """A function (bytes, SerializationContext) -> JSON-compatible value."""
    fmt = args.format
    if fmt == "raw":
        def raw(data, _ctx):
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(data).decode("ascii")}
        return raw
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: PLC0415

        reader = read_text(args.schema_file) if args.schema_file else None
        return AvroDeserializer(client, reader, conf=dict(TOPIC_STRATEGY))
    if fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer  # noqa: PLC0415

        schema = read_text(args.schema_file) if args.schema_file else None
        return JSONDeserializer(schema, schema_registry_client=client, conf=dict(TOPIC_STRATEGY))
    if fmt == "protobuf":
        from google.protobuf.json_format import MessageToDict  # noqa: PLC0415
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer  # noqa: PLC0415

        if not args.schema_file:
            fail("--schema-file (the .proto) is needed for --format protobuf", USAGE_EXIT)
        msg_type = load_proto_message(args.schema_file, args.proto_message)
        deserializer = ProtobufDeserializer(msg_type, {"use.deprecated.format": False, **TOPIC_STRATEGY})

        def proto(data, ctx):
            return MessageToDict(deserializer(data, ctx), preserving_proto_field_name=True)
        return proto
    fail(f"unknown format {fmt}", USAGE_EXIT)


def to_json_default(obj):
    """JSON for what Avro decoding yields beyond plain JSON types."""
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (decimal.Decimal, uuid.UUID)):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def schema_id_of(data):
    if data is not None and len(data) >= 5 and data[0] == 0:
        return int.from_bytes(data[1:5], "big")
    return None


def cmd_consume(args):
    client = SchemaRegistryClient({"url": args.registry}) if args.registry else None
    if client is None and args.format != "raw":
        fail(f"--registry is needed for --format {args.format}", USAGE_EXIT)
    deserialize = value_deserializer(args, client)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"sr-client-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    consumer.subscribe([args.topic])
    read = 0
    deadline = time.monotonic() + args.timeout
    try:
        while read < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"timeout after {args.timeout} s: read {read} of {args.count} records from {args.topic}")
            msg = consumer.poll(min(left, 1.0))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue  # the topic may not exist yet
                fail(f"consume error: {msg.error()}")
            data = msg.value()
            key = msg.key()
            out = {
                "key": None if key is None else key.decode("utf-8", errors="backslashreplace"),
                "value": None,
                "schema_id": schema_id_of(data),
            }
            if data is not None:
                ctx = SerializationContext(msg.topic(), MessageField.VALUE, msg.headers())
                try:
                    out["value"] = deserialize(data, ctx)
                except Exception as e:  # noqa: BLE001 (a poison record: report it, go on)
                    out["error"] = f"{type(e).__name__}: {e}"
            print(json.dumps(out, default=to_json_default), flush=True)
            read += 1
    finally:
        consumer.close()


# --- register ----------------------------------------------------------------


def cmd_register(args):
    client = SchemaRegistryClient({"url": args.registry})
    schema = Schema(read_text(args.schema_file), SCHEMA_TYPES[args.format])
    try:
        schema_id = client.register_schema(args.subject, schema)
    except SchemaRegistryError as e:
        print(f"{e.http_status_code} {e.error_message} (error_code {e.error_code})")
        print(f"sr_client: registry refused the schema: HTTP {e.http_status_code}: {e.error_message}",
              file=sys.stderr)
        sys.exit(2)
    print(schema_id)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 64: exit code 2 means "the registry refused"."""

    def error(self, message):
        self.print_usage(sys.stderr)
        fail(message, USAGE_EXIT)


def main(argv=None):
    parser = _Parser(prog="sr_client.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("produce", help="records from JSON lines on stdin")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--format", required=True, choices=["avro", "protobuf", "json", "raw"])
    p.add_argument("--schema-file")
    p.add_argument("--proto-message")
    p.add_argument("--key-format", default="string", choices=["string"])
    p.set_defaults(func=cmd_produce)

    c = sub.add_parser("consume", help="records as JSON lines on stdout")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--registry")
    c.add_argument("--topic", required=True)
    c.add_argument("--format", required=True, choices=["avro", "protobuf", "json", "raw"])
    c.add_argument("--count", required=True, type=int)
    c.add_argument("--timeout", type=float, default=30.0)
    c.add_argument("--schema-file")
    c.add_argument("--proto-message")
    c.set_defaults(func=cmd_consume)

    r = sub.add_parser("register", help="register a schema, print its id")
    r.add_argument("--registry", required=True)
    r.add_argument("--subject", required=True)
    r.add_argument("--format", required=True, choices=sorted(SCHEMA_TYPES))
    r.add_argument("--schema-file", required=True)
    r.set_defaults(func=cmd_register)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KafkaException as e:
        fail(f"kafka: {e}")
    except SchemaRegistryError as e:
        fail(f"registry: HTTP {e.http_status_code}: {e.error_message}")
    except Exception as e:  # noqa: BLE001 (e.g. the registry is not reachable)
        fail(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
