"""Package list for setuptools (the rest of the metadata is in pyproject.toml).

The constraint library lives in the top-level ``constraints/`` folder, the source of truth
that institutions read and edit; it is mapped into the wheel as the package data folder
``rtqa/constraint_library``. Development tools (``devtools/``, ``bench/``) never ship.
"""

from setuptools import find_namespace_packages, setup

setup(
    # data folders (templates, schema) are namespace packages, so they are listed too
    packages=find_namespace_packages(include=["rtqa", "rtqa.*"], exclude=["*.__pycache__"])
    + ["rtqa.constraint_library", "rtqa.constraint_library.protocols"],
    package_dir={"rtqa.constraint_library": "constraints",
                 "rtqa.constraint_library.protocols": "constraints/protocols"},
)
