# The C++ OTLP trace reader (exporter/otlp/_reader.cpp); built when protoc, libprotobuf and a C++
# compiler are present. Rows as exporter/otlp/rows.py describes them.
from typing import Any

def read(body: bytes, wanted: Any, prefix: str) -> tuple[list[dict[str, Any]], list[Any]] | None: ...

class Mapper:
    """The usual binary request mapped to the events JSON of POST /v1/events (exporter/otlp/_mapper.cpp)."""

    def __init__(self, agents: dict[str, tuple[Any, ...]], max_spans: int, max_traces: int) -> None: ...
    def map(self, body: bytes) -> tuple[bytes, bytes, bytes, int, int] | None: ...
