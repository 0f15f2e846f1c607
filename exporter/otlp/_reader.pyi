# The C++ OTLP trace reader (exporter/otlp/_reader.cpp); built when protoc, libprotobuf and a C++
# compiler are present. Rows as exporter/otlp/rows.py describes them.
from typing import Any

def read(body: bytes, wanted: Any, prefix: str) -> tuple[list[dict[str, Any]], list[Any]] | None: ...
