"""The C part of Berth: berth.trace's step wrapper (src/berth/trace/_speedups.c).

Optional: without a compiler and Python's headers the install goes on without it and
berth.trace uses its Python wrapper (the same spans, at a higher cost per step).
Everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("berth.trace._speedups", ["src/berth/trace/_speedups.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                                                 "-Wno-unused-parameter"])])
