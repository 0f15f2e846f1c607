"""Test doubles: stand-ins for what the product talks to, used only by the suite and the benchmarks.

Import them as `tests.doubles.<module>` with the repository's root on the path, as
`.venv/bin/python -m pytest` run from the root has it; `fake_provider` also runs on its own
(`python -m tests.doubles.fake_provider`, from the root).
"""
