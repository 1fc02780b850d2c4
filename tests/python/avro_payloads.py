"""Avro payloads made by fastavro (an implementation independent of the
apache-avro crate Attic decodes with), for tests/decode.rs.

Usage: avro_payloads.py DIR
Writes DIR/1.avsc and DIR/2.avsc (two versions of one record schema) and
prints one JSON object per payload on stdout:
  {"topic": ..., "hex": <payload bytes>, "expected": <decoded value or null>}
Exit 3 if fastavro cannot be imported (the test then skips).
"""
import io
import json
import os
import sys

try:
    import fastavro
    import fastavro.schema
except ImportError:
    sys.exit(3)

V1 = {
    "type": "record",
    "name": "Reading",
    "namespace": "attic.test",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "t", "type": "double"},
    ],
}
V2 = {
    "type": "record",
    "name": "Reading",
    "namespace": "attic.test",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "t", "type": "double"},
        {"name": "unit", "type": ["null", "string"], "default": None},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["AIR", "WATER"]}},
        {"name": "raw", "type": "bytes"},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def datum(schema, record):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def fingerprint(schema):
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema))
    # fastavro gives the little-endian bytes as hex, as single-object encoding stores them.
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


def main():
    out = sys.argv[1]
    with open(os.path.join(out, "1.avsc"), "w") as f:
        json.dump(V1, f)
    with open(os.path.join(out, "2.avsc"), "w") as f:
        json.dump(V2, f)
    r1 = {"id": 1, "t": 21.5}
    r2 = {
        "id": 2,
        "t": -3.25,
        "unit": "C",
        "kind": "WATER",
        "raw": b"\x00\xff\x10",
        "tags": {"a": 1, "b": 2},
        "at": 1764201600123456,
    }
    r2_json = dict(r2, raw="AP8Q")
    rows = [
        ("confluent/v1", b"\x00" + (1).to_bytes(4, "big") + datum(V1, r1), r1),
        ("confluent/v2", b"\x00" + (2).to_bytes(4, "big") + datum(V2, r2), r2_json),
        ("single/v1", b"\xc3\x01" + fingerprint(V1) + datum(V1, r1), r1),
        ("single/v2", b"\xc3\x01" + fingerprint(V2) + datum(V2, dict(r2, unit=None)), dict(r2_json, unit=None)),
        ("bare/v1", datum(V1, {"id": 3, "t": 0.5}), {"id": 3, "t": 0.5}),
        ("confluent/missing", b"\x00" + (9).to_bytes(4, "big") + datum(V1, r1), None),
        ("confluent/corrupt", b"\x00" + (2).to_bytes(4, "big") + b"\x04", None),
    ]
    for topic, payload, expected in rows:
        print(json.dumps({"topic": topic, "hex": payload.hex(), "expected": expected}))


main()
