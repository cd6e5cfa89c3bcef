"""Parses a Triton config.pbtxt with protobuf's own text-format parser and reads the ONNX file's
graph signature with the onnx package; prints both as JSON for test/export/triton.test.ts.

The message classes are built here from a descriptor of the subset of Triton's ModelConfig that
tessera writes. Field names, numbers and types were checked against
triton-inference-server/common protobuf/model_config.proto at commit
83adf7cf88a2f343005974dff3728be746de2d66 (package inference; ModelConfig.name=1, platform=2,
version_policy=3, max_batch_size=4, input=5, output=6, dynamic_batching=11 in the scheduling_choice
oneof; ModelInput name=1 data_type=2 dims=4; ModelOutput name=1 data_type=2 dims=3
label_filename=4; ModelDynamicBatching preferred_batch_size=1 max_queue_delay_microseconds=2;
ModelVersionPolicy latest=1 all=2 specific=3, Specific.versions=1; DataType values as there).
An unknown field or a wrong type in the file is a parse error.

usage: python3 triton_model_config.py config.pbtxt model.onnx [model.onnx ...]
"""
import json
import sys

import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.json_format import MessageToDict

F = descriptor_pb2.FieldDescriptorProto
DATA_TYPES = ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "STRING", "BF16"]


def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None, oneof=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof


def model_config_class():
    fd = descriptor_pb2.FileDescriptorProto(name="tessera_triton_subset.proto", package="inference", syntax="proto3")
    dt = fd.enum_type.add(name="DataType")
    for i, n in enumerate(DATA_TYPES):
        dt.value.add(name=f"TYPE_{n}", number=i)

    vp = fd.message_type.add(name="ModelVersionPolicy")
    vp.nested_type.add(name="Latest").field.add(name="num_versions", number=1, type=F.TYPE_UINT32, label=F.LABEL_OPTIONAL)
    vp.nested_type.add(name="All")
    vp.nested_type.add(name="Specific").field.add(name="versions", number=1, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    vp.oneof_decl.add(name="policy_choice")
    field(vp, "latest", 1, F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy.Latest", oneof=0)
    field(vp, "all", 2, F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy.All", oneof=0)
    field(vp, "specific", 3, F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy.Specific", oneof=0)

    mi = fd.message_type.add(name="ModelInput")
    field(mi, "name", 1, F.TYPE_STRING)
    field(mi, "data_type", 2, F.TYPE_ENUM, type_name=".inference.DataType")
    field(mi, "dims", 4, F.TYPE_INT64, F.LABEL_REPEATED)

    mo = fd.message_type.add(name="ModelOutput")
    field(mo, "name", 1, F.TYPE_STRING)
    field(mo, "data_type", 2, F.TYPE_ENUM, type_name=".inference.DataType")
    field(mo, "dims", 3, F.TYPE_INT64, F.LABEL_REPEATED)
    field(mo, "label_filename", 4, F.TYPE_STRING)

    db = fd.message_type.add(name="ModelDynamicBatching")
    field(db, "preferred_batch_size", 1, F.TYPE_INT32, F.LABEL_REPEATED)
    field(db, "max_queue_delay_microseconds", 2, F.TYPE_UINT64)

    mc = fd.message_type.add(name="ModelConfig")
    mc.oneof_decl.add(name="scheduling_choice")
    field(mc, "name", 1, F.TYPE_STRING)
    field(mc, "platform", 2, F.TYPE_STRING)
    field(mc, "version_policy", 3, F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy")
    field(mc, "max_batch_size", 4, F.TYPE_INT32)
    field(mc, "input", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".inference.ModelInput")
    field(mc, "output", 6, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".inference.ModelOutput")
    field(mc, "dynamic_batching", 11, F.TYPE_MESSAGE, type_name=".inference.ModelDynamicBatching", oneof=0)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("inference.ModelConfig"))


def onnx_signature(path):
    m = onnx.load(path)
    inits = {t.name for t in m.graph.initializer}

    def spec(v):
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        return {"name": v.name, "elem_type": onnx.TensorProto.DataType.Name(t.elem_type), "dims": dims}

    return {"inputs": [spec(v) for v in m.graph.input if v.name not in inits], "outputs": [spec(v) for v in m.graph.output]}


def main():
    cls = model_config_class()
    with open(sys.argv[1]) as f:
        config = text_format.Parse(f.read(), cls())
    out = {
        "config": MessageToDict(config, preserving_proto_field_name=True, use_integers_for_enums=False),
        "onnx": [onnx_signature(p) for p in sys.argv[2:]],
    }
    print(json.dumps(out))


main()
