"""
ASGI config for pamrotate project.

It exposes the ASGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/
"""

import os

from django.core.asgi import get_asgi_application

from pamrotate.envfile import load_env_file
from pamrotate.startup import prepare

load_env_file()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pamrotate.settings")
prepare()  # the data directory and dev keys, before the settings read them

application = get_asgi_application()

from pamrotate import crypto  # noqa: E402  (after the apps are loaded)

# The web refuses to start, rather than serve pages and fail on the first secret, with wrong keys.
crypto.check_keys()
