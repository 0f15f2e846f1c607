"""The compiled parts, both optional accelerators of the exporter's ingest (everything else is in
pyproject.toml); without a compiler or their libraries the package still installs, and the
pure-Python paths do the same work, slower:

- `exporter._scan`: the `POST /v1/events` scanner, C++ on simdjson (Debian: libsimdjson-dev);
- `exporter.otlp._reader`: the `POST /v1/traces` reader and mapper, C++ on the classes protoc
  generates from the vendored opentelemetry-proto files (Debian: protobuf-compiler, libprotobuf-dev),
  and its mapper's wire reader on protozero (Debian: libprotozero-dev, header-only).
  The classes are generated at build time into build/otlp_proto, so no generated code is committed.
  The mapper tallies into the events scanner through its C API (`exporter/_scan_api.h`, a capsule
  read at run time): without `_scan` it writes the events' JSON instead.

setup.sh installs those packages.
"""

import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

PROTO_ROOT = Path("exporter/otlp/proto")
PROTOS = [  # what an ExportTraceServiceRequest needs, in import order
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
]
GENERATED = Path("build/otlp_proto")
READER = "agentslo.exporter.otlp._reader"


class BuildExt(build_ext):
    """Runs protoc for the OTLP reader before compiling it (a failure skips the optional extension)."""

    def build_extension(self, ext: Extension) -> None:
        if ext.name == READER:
            GENERATED.mkdir(parents=True, exist_ok=True)
            try:
                subprocess.run(["protoc", f"-I{PROTO_ROOT}", f"--cpp_out={GENERATED}", *PROTOS], check=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                raise CompileError(f"protoc could not generate the OTLP classes: {exc}") from exc
            generated = [str(GENERATED / p.replace(".proto", ".pb.cc")) for p in PROTOS]
            ext.sources = [*(s for s in ext.sources if s not in generated), *generated]
        super().build_extension(ext)


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension(
            "agentslo.exporter._scan",
            ["exporter/_scan.cpp"],
            depends=["exporter/_scan_api.h"],
            language="c++",
            libraries=["simdjson"],
            extra_compile_args=["-std=c++17", "-O2"],
            optional=True,
        ),
        Extension(
            READER,
            ["exporter/otlp/_reader.cpp", "exporter/otlp/_mapper.cpp"],
            depends=["exporter/_scan_api.h"],  # the events scanner's C API, which the mapper tallies into
            include_dirs=[str(GENERATED)],
            language="c++",
            libraries=["protobuf"],
            # no fused multiply-add: the mapper's cost sums round as Python's do
            extra_compile_args=["-std=c++17", "-O2", "-ffp-contract=off"],
            optional=True,
        ),
    ],
)
