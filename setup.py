"""The one compiled part: `exporter._scan`, an optional accelerator of the exporter's ingest path.

Everything else is in pyproject.toml. It is C++ on simdjson (Debian: libsimdjson-dev, which
setup.sh installs). `optional=True`: without a compiler or simdjson the package still installs,
and the pure-Python path (msgspec, then numpy) does the same work, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "agentslo.exporter._scan",
            ["exporter/_scan.cpp"],
            language="c++",
            libraries=["simdjson"],
            extra_compile_args=["-std=c++17", "-O2"],
            optional=True,
        )
    ]
)
