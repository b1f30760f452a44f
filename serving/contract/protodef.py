"""Builds protobuf message classes from compact Python declarations, in a private pool.

TF Serving's wire messages are needed both by the thin client (which must not import
TensorFlow, whose generated modules drag all of it in) and by config files whose
``.proto`` is not shipped in ``tensorflow-serving-api`` (batching, monitoring). Declaring
them here keeps the field numbers reviewable in one place, and building them in a
private :class:`~google.protobuf.descriptor_pool.DescriptorPool` lets them coexist in one
process with the official ``*_pb2`` modules that register the same full names in the
default pool.

Usage::

    pool = new_pool()
    add_file(pool, "demo.proto", "demo", [message("Point", [("x", 1, "int64")])])
    Point = message_class(pool, "demo.Point")
"""

from __future__ import annotations

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "double": _F.TYPE_DOUBLE,
    "float": _F.TYPE_FLOAT,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32,
    "uint32": _F.TYPE_UINT32,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
WRAPPERS_FILE = wrappers_pb2.DESCRIPTOR.name
ANY_FILE = any_pb2.DESCRIPTOR.name


def new_pool() -> descriptor_pool.DescriptorPool:
    """A fresh pool that already knows ``google/protobuf/{wrappers,any}.proto``."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    return pool


def enum(name: str, values: list[tuple[str, int]]) -> descriptor_pb2.EnumDescriptorProto:
    """An enum declaration: ``values`` are (NAME, number) pairs."""
    proto = descriptor_pb2.EnumDescriptorProto(name=name)
    for value_name, number in values:
        proto.value.add(name=value_name, number=number)
    return proto


def message(name: str, fields: list[tuple], nested: list = (), enums: list = ()) -> descriptor_pb2.DescriptorProto:
    """A message declaration.

    Each field is ``(name, number, type)`` or ``(name, number, type, oneof_name)`` where
    ``type`` is a scalar name (``"int64"``), a fully qualified message (``".pkg.Msg"``),
    ``"enum .pkg.Enum"``, any of those prefixed with ``"repeated "``, or
    ``"map <key scalar> <value type>"``. Map entry messages are generated as protoc does.
    """
    proto = descriptor_pb2.DescriptorProto(name=name)
    proto.nested_type.extend(nested)
    proto.enum_type.extend(enums)
    oneofs: list[str] = []
    for spec in fields:
        field_name, number, type_ = spec[:3]
        if type_.startswith("map "):
            _, key_type, value_type = type_.split(" ", 2)
            entry_name = "".join(part.capitalize() for part in field_name.split("_")) + "Entry"
            entry = message(entry_name, [("key", 1, key_type), ("value", 2, value_type)])
            entry.options.map_entry = True
            proto.nested_type.append(entry)
            field = _field(field_name, number, f"repeated .{entry_name}")
            field.type_name = f"{name}.{entry_name}"  # relative: add_file prefixes the package
        else:
            field = _field(field_name, number, type_)
        if len(spec) > 3:
            if spec[3] not in oneofs:
                oneofs.append(spec[3])
                proto.oneof_decl.add(name=spec[3])
            field.oneof_index = oneofs.index(spec[3])
        proto.field.append(field)
    return proto


def _field(name: str, number: int, type_: str) -> descriptor_pb2.FieldDescriptorProto:
    field = _F(name=name, number=number, label=_F.LABEL_OPTIONAL)
    if type_.startswith("repeated "):
        field.label = _F.LABEL_REPEATED
        type_ = type_[len("repeated ") :]
    if type_ in _SCALARS:
        field.type = _SCALARS[type_]
    elif type_.startswith("enum "):
        field.type = _F.TYPE_ENUM
        field.type_name = type_[len("enum ") :]
    elif type_.startswith("."):
        field.type = _F.TYPE_MESSAGE
        field.type_name = type_
    else:
        raise ValueError(f"field {name!r}: unknown type {type_!r}")
    return field


def _qualify_map_entries(package: str, proto: descriptor_pb2.DescriptorProto) -> None:
    # message() cannot know the package; protoc writes every type name absolute.
    for field in proto.field:
        if field.type_name and not field.type_name.startswith("."):
            field.type_name = f".{package}.{field.type_name}"


def add_file(pool, file_name: str, package: str, messages: list, enums: list = (), deps: list[str] = ()) -> None:
    """Adds one proto3 file of ``messages``/``enums`` in ``package`` to ``pool``."""
    proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    proto.dependency.extend(deps)
    for declared in messages:
        _qualify_map_entries(package, declared)
    proto.message_type.extend(messages)
    proto.enum_type.extend(enums)
    pool.AddSerializedFile(proto.SerializeToString())


def message_class(pool, full_name: str):
    """The Python class for message ``full_name`` of ``pool``."""
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
