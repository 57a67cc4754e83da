"""Brings Superset's metadata to the platform's state, idempotently, in one process (loading
Superset's app costs seconds, so every step shares one load):

1. schema migrations (``superset db upgrade``);
2. the admin user from SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD (created, or its password
   and role brought back to the settings);
3. roles and permissions (``superset init``) and the dashboards-as-code bundle of
   ``superset/assets`` (databases, datasets, charts, dashboards: Superset's export format, every
   object keyed by its uuid), imported with overwrite. The Trino database's address comes from the
   environment at import time (``${TRINO_HOST}`` ... in ``databases/*.yaml``): localhost natively,
   the ``trino`` service in compose.

Step 3 is skipped when the bundle, the Trino address and Superset's version are the ones of the
last import (a stamp in Superset's home) and every object of the bundle is still there.

Run by ``infra/local/services/superset.sh`` in Superset's virtualenv, before the web server:

    python superset/bootstrap.py import [--force]   # the bootstrap (what the service runs)
    python superset/bootstrap.py export             # the bundle's objects, as Superset has them
                                                    # now (edited in the UI), back into the bundle
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from string import Template
from typing import Any

import yaml

ASSETS = Path(__file__).resolve().parent / "assets"
KINDS = ("databases", "datasets", "charts", "dashboards")
log = logging.getLogger("superset-bootstrap")


def say(msg: str, *args: object) -> None:
    # Superset's and alembic's logging setups disable the loggers that exist before them
    log.disabled = False
    log.info(msg, *args)


def bundle_files(root: Path = ASSETS) -> dict[str, str]:
    """The bundle as Superset's importers take it: {"charts/x.yaml": text, ...}."""
    files = {"metadata.yaml": (root / "metadata.yaml").read_text()}
    for kind in KINDS:
        for path in sorted((root / kind).rglob("*.yaml")):
            files[path.relative_to(root).as_posix()] = path.read_text()
    return files


def render(files: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """Database files with ${VARS} from the environment (a missing one is an error naming it)."""
    out = dict(files)
    for name, text in files.items():
        if name.startswith("databases/"):
            try:
                out[name] = Template(text).substitute(env)
            except KeyError as exc:
                raise SystemExit(f"setting {exc.args[0]} is not set (needed by {name})") from None
    return out


def bundle_uuids(files: dict[str, str]) -> dict[str, set[str]]:
    uuids: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name, text in files.items():
        kind = name.split("/", 1)[0]
        if kind in uuids:
            uuids[kind].add(str(yaml.safe_load(text)["uuid"]))
    return uuids


def fingerprint(files: dict[str, str], version: str) -> str:
    digest = hashlib.sha256(version.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# inside Superset's app


@contextmanager
def superset_app() -> Iterator[Any]:
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        yield app


def upgrade_schema() -> None:
    from flask_migrate import upgrade

    upgrade()


def ensure_admin(username: str, password: str) -> Any:
    """The admin user, created or brought back to the settings (`fab create-admin` only creates)."""
    from superset.extensions import db
    from werkzeug.security import check_password_hash, generate_password_hash

    from superset import security_manager as sm

    admin_role = sm.find_role(sm.auth_role_admin)
    user = sm.find_user(username=username)
    if user is None:
        user = sm.add_user(
            username, "Superset", "Admin", f"{username}@localhost", admin_role, password=password
        )
        if not user:
            raise SystemExit(f"could not create the Superset admin user {username!r}")
        say("created the admin user %s", username)
        return user
    changed = False
    if not check_password_hash(user.password, password):
        user.password = generate_password_hash(password)
        changed = True
    if admin_role not in user.roles:
        user.roles.append(admin_role)
        changed = True
    if not user.active:
        user.active = True
        changed = True
    if changed:
        db.session.commit()
        say("updated the admin user %s to the settings", username)
    return user


def sync_roles() -> None:
    from superset import appbuilder, security_manager

    appbuilder.add_permissions(update_perms=True)
    security_manager.sync_role_definitions()


def missing_objects(uuids: dict[str, set[str]]) -> list[str]:
    from superset.connectors.sqla.models import SqlaTable
    from superset.extensions import db
    from superset.models.core import Database
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice

    models = {"databases": Database, "datasets": SqlaTable, "charts": Slice, "dashboards": Dashboard}
    missing = []
    for kind, wanted in uuids.items():
        model = models[kind]
        have = {str(u) for (u,) in db.session.query(model.uuid).all()}
        missing += [f"{kind[:-1]} {u}" for u in sorted(wanted - have)]
    return missing


def import_bundle(files: dict[str, str], user: Any) -> None:
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.utils.core import override_user

    with override_user(user):
        ImportAssetsCommand(files).run()


def run_import(force: bool) -> None:
    version = metadata.version("apache-superset")
    t0 = time.monotonic()
    files = render(bundle_files(), dict(os.environ))
    stamp_file = Path(os.environ.get("SUPERSET_HOME", ".")) / "bootstrap-stamp.json"
    stamp = fingerprint(files, version)
    with superset_app():
        upgrade_schema()
        uuids = bundle_uuids(files)
        done = stamp_file.exists() and json.loads(stamp_file.read_text()).get("stamp") == stamp
        todo = force or not done or bool(missing_objects(uuids))
        if todo:
            sync_roles()  # before the admin: a fresh metadata database has no Admin role yet
        user = ensure_admin(os.environ["SUPERSET_ADMIN_USER"], os.environ["SUPERSET_ADMIN_PASSWORD"])
        if not todo:
            say("roles and the asset bundle are up to date (stamp %s): skipped", stamp[:12])
        else:
            import_bundle(files, user)
            still = missing_objects(uuids)
            if still:
                raise SystemExit(f"the asset bundle did not import: missing {', '.join(still)}")
            stamp_file.parent.mkdir(parents=True, exist_ok=True)
            stamp_file.write_text(json.dumps({"stamp": stamp, "superset": version}))
            counts = ", ".join(f"{len(v)} {k}" for k, v in uuids.items())
            say("imported the asset bundle (%s)", counts)
    say("bootstrap done in %.1fs", time.monotonic() - t0)


def run_export() -> None:
    """Writes the bundle's objects as Superset has them now over their files in superset/assets
    (new objects of a bundle dashboard get Superset's file name); the database address goes back
    to its ${TRINO_*} template."""
    current = bundle_files()
    by_uuid = {str(yaml.safe_load(t)["uuid"]): n for n, t in current.items() if n != "metadata.yaml"}
    templates = {
        str(yaml.safe_load(t)["uuid"]): yaml.safe_load(t)["sqlalchemy_uri"]
        for n, t in current.items()
        if n.startswith("databases/")
    }
    with superset_app():
        from superset.commands.dashboard.export import ExportDashboardsCommand
        from superset.extensions import db
        from superset.models.dashboard import Dashboard
        from superset.utils.core import override_user

        from superset import security_manager

        wanted = bundle_uuids(current)["dashboards"]
        ids = [i for i, u in db.session.query(Dashboard.id, Dashboard.uuid).all() if str(u) in wanted]
        admin = security_manager.find_user(username=os.environ["SUPERSET_ADMIN_USER"])
        with override_user(admin):
            exported = [(n, c()) for n, c in ExportDashboardsCommand(ids, export_related=True).run()]
        for name, content in exported:
            if name == "metadata.yaml":
                continue
            doc = yaml.safe_load(content)
            uuid = str(doc["uuid"])
            if uuid in templates:
                doc["sqlalchemy_uri"] = templates[uuid]
            target = ASSETS / by_uuid.get(uuid, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110))
            say("exported %s", target.relative_to(ASSETS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("command", nargs="?", default="import", choices=["import", "export"])
    parser.add_argument("--force", action="store_true", help="import even when the stamp says done")
    args = parser.parse_args(argv)
    # Superset configures the root logger when its app loads: this script's lines keep their own
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    if args.command == "export":
        run_export()
    else:
        run_import(args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
