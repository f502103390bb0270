"""tf.train.Example message classes built from their schema, without importing TensorFlow.

Importing TensorFlow costs ~700 MB of RSS per process; Beam workers only need to serialize
Examples, so they use these classes. The schema mirrors tensorflow/core/example/{feature,
example}.proto field for field (same numbers and types), so the bytes are identical, and it
lives in a private descriptor pool, so it never clashes with TensorFlow's own when both load.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, label: int = _F.LABEL_OPTIONAL, **extra):
    return _F(name=name, number=number, type=kind, label=label, **extra)


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="segpipe/tf_example.proto", package="tensorflow", syntax="proto3"
    )
    repeated = _F.LABEL_REPEATED
    proto.message_type.add(name="BytesList").field.append(
        _field("value", 1, _F.TYPE_BYTES, repeated)
    )
    proto.message_type.add(name="FloatList").field.append(
        _field("value", 1, _F.TYPE_FLOAT, repeated)
    )
    proto.message_type.add(name="Int64List").field.append(
        _field("value", 1, _F.TYPE_INT64, repeated)
    )
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, kind) in enumerate(
        (("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")),
        start=1,
    ):
        feature.field.append(
            _field(name, number, _F.TYPE_MESSAGE, type_name=f".tensorflow.{kind}", oneof_index=0)
        )
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.append(_field("key", 1, _F.TYPE_STRING))
    entry.field.append(_field("value", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.Feature"))
    features.field.append(
        _field(
            "feature", 1, _F.TYPE_MESSAGE, repeated, type_name=".tensorflow.Features.FeatureEntry"
        )
    )
    proto.message_type.add(name="Example").field.append(
        _field("features", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    )
    return proto


@functools.cache
def example_classes() -> dict[str, type]:
    """Message classes by name: Example, Features, Feature, BytesList, FloatList, Int64List."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    names = ("Example", "Features", "Feature", "BytesList", "FloatList", "Int64List")
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{name}"))
        for name in names
    }
