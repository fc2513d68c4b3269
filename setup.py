"""Build hook (the rest of the configuration is pyproject.toml): a built wheel carries the
user documentation as ``stylebridge/_docs/*.md`` for ``stylebridge docs``, since help texts
and messages point there and a wheel has no ``docs/`` folder.  An editable install reads the
pages from the checkout instead (``stylebridge/cli/commands/docs.py``)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: topic name -> page in the source tree (every docs/*.md keeps its own name)
EXTRA_PAGES = {"contributing": "CONTRIBUTING.md", "benchmarks": "benchmarks/RESULTS.md",
               "security": "SECURITY.md"}


class BuildWithDocs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's own files are read
        target = Path(self.build_lib) / "stylebridge" / "_docs"
        target.mkdir(parents=True, exist_ok=True)
        for page in sorted((ROOT / "docs").glob("*.md")):
            shutil.copyfile(page, target / page.name)
        for topic, rel in EXTRA_PAGES.items():
            if (ROOT / rel).is_file():
                shutil.copyfile(ROOT / rel, target / f"{topic}.md")


setup(cmdclass={"build_py": BuildWithDocs})
