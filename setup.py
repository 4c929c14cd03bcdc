"""Package layout that pyproject.toml cannot state: the top-level ``reports/templates/`` folder ships
inside the wheel as ``gaspprobe.report_templates`` (the report's jinja2 templates), so a plain
``pip install .`` renders reports without a checkout. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gaspprobe", "gaspprobe.*"]) + ["gaspprobe.report_templates"],
    package_dir={"gaspprobe.report_templates": "reports/templates"},
)
