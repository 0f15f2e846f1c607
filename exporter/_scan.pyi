# The C++ ingest scanner (exporter/_scan.cpp); built when simdjson and a C++ compiler are present.
from typing import Any

class Scanner:
    def __init__(self, kinds: Any, limits: tuple[int, int, int, float]) -> None: ...
    def scan(self, body: bytes) -> tuple[int, list[tuple[Any, ...]]] | None: ...

# The C API for other extensions (exporter/_scan_api.h): a PyCapsule.
_C_API: Any
