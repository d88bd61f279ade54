"""Package discovery for the three source roots; all metadata lives in pyproject.toml.

`recipes/` and `executors/` sit at the top of the repository (the layout users browse) but are
installed as `nemolite.recipes` and `nemolite.executors`.
"""

from setuptools import find_packages, setup

ROOTS = {"nemolite": "src/nemolite", "nemolite.recipes": "recipes", "nemolite.executors": "executors"}

packages = []
for name, path in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(path)]

setup(packages=packages, package_dir=ROOTS)
