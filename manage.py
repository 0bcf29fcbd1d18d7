#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    """Load the project's .env, prepare the data directory, check the keys, then run the command."""
    try:
        import django
        from django.core.exceptions import ImproperlyConfigured
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        # `python manage.py …` from the README works after `make run` without activating the venv.
        venv_python = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv", "bin", "python")
        if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(
            os.path.dirname(os.path.dirname(venv_python))
        ):
            os.execv(venv_python, [venv_python, *sys.argv])  # noqa: S606 - the same command, in the venv
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    # After the import above: a python without the venv's packages has handed itself over by now.
    from pamrotate.envfile import load_env_file
    from pamrotate.startup import prepare

    load_env_file()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pamrotate.settings")
    try:
        prepare()  # the data directory and dev keys, before the settings read them
        django.setup()
        from pamrotate import crypto

        # Every command and worker refuses to start with keys that cannot read what is stored.
        crypto.check_keys()
    except ImproperlyConfigured as exc:
        sys.exit(f"pamrotate: cannot start: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
