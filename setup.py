"""Packaging glue that pyproject.toml cannot express: the extension's top-level Resources/ folder travels in the
wheel as the data package MammoDNNLib.Resources (see MammoDNNLib/paths.py)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["MammoDNNLib", "MammoDNNLib.*"]) + ["MammoDNNLib.Resources"],
    package_dir={"MammoDNNLib.Resources": "Resources"},
)
