"""Inside the sandbox, before anything of exapt: set ``sys.path`` and map exapt's packages,
then run ``exapt.agents.remote.main``. Standard library only; started by the host as
``python -I -S -B boot.py CONFIG`` (see ``runtime.py``), CONFIG = JSON ``{"path": [...],
"packages": {"exapt.agents": "/folder", ...}}`` (a package installed editable lives
outside its parent's folder: it is found through this map, as the editable finder would).
"""

import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys


class _PackageMap(importlib.abc.MetaPathFinder):
    def __init__(self, packages: dict) -> None:
        self.packages = packages

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        folder = self.packages.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            name, folder + "/__init__.py", submodule_search_locations=[folder]
        )


def _boot() -> None:
    config = json.loads(sys.argv[1])
    sys.path[:] = [*config["path"], *sys.path]
    sys.meta_path.insert(0, _PackageMap(config["packages"]))
    del sys.argv[1]
    from exapt.agents.remote.main import main

    main()


if __name__ == "__main__":
    _boot()
