"""``db.repo`` gathers every aggregate's functions: a caller needs only ``repo.NAME``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import db.repo


def test_every_public_name_of_every_aggregate_is_reachable_from_db_repo():
    modules = [m.name for m in pkgutil.iter_modules(db.repo.__path__, "db.repo.")]
    aggregates = ("accounts", "choices", "jobs", "labeling", "projects", "registry", "text")
    assert set(modules) == {f"db.repo.{m}" for m in aggregates}
    for name in modules:
        module = importlib.import_module(name)
        own = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", name) == name and not inspect.ismodule(v)
        ]
        missing = [n for n in own if getattr(db.repo, n, None) is not getattr(module, n)]
        assert not missing, f"{name} defines {missing}, which db/repo/__init__.py does not export"
