"""Packages the top-level catalogs (hw_profiles/, model_templates/, traces/, pricing/) into the wheel.

They live at the top of the repository so that users can read and edit them; at build time they are
copied to ``servesim/_data/`` so that ``pip install .`` works from anywhere.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CATALOG_DIRS = ("hw_profiles", "model_templates", "traces", "pricing")


class BuildWithCatalogs(build_py):
    def run(self):
        super().run()
        root = Path(__file__).parent
        target = Path(self.build_lib) / "servesim" / "_data"
        for name in CATALOG_DIRS:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithCatalogs})
