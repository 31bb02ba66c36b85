"""Build an empty, fully migrated Label Studio SQLite database (run with Label Studio's python).

Label Studio runs ~400 migrations on a new database at first start: 1-2
minutes on a 2-core machine, paid by every test session. A database that
holds only the schema (no user, no organisation, no secret: those are made
at start from the fixture's env) is safe to copy into each new data dir, so
install.sh builds it once per Label Studio version.

Usage: python migrate_template.py <output sqlite path>
"""

import os
import shutil
import sys
import tempfile


def main() -> None:
    target = os.path.abspath(sys.argv[1])
    workdir = tempfile.mkdtemp(prefix="ls-template-", dir=os.path.dirname(target))
    os.environ["LABEL_STUDIO_BASE_DATA_DIR"] = workdir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
    os.environ["LATEST_VERSION_CHECK"] = "false"
    os.environ["COLLECT_ANALYTICS"] = "false"
    import label_studio

    sys.path.insert(0, os.path.dirname(label_studio.__file__))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-color", verbosity=0)
    os.replace(os.path.join(workdir, "label_studio.sqlite3"), target)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
