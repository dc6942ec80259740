"""``python -m app.server [Gunicorn options] APP``: the Procfile's web command.

It checks every setting (``app.config.check_environment``) and then runs Gunicorn's own
command in this same process, which becomes the Gunicorn master. The check must come
first: Gunicorn reads ``WEB_CONCURRENCY`` and ``FORWARDED_ALLOW_IPS`` when it is imported,
before any config file, and a bad value there ends in a bare traceback. Only the small
config module is imported before Gunicorn: never Flask, NumPy or Keras.
"""

from __future__ import annotations

import sys

from app.config import EXIT_BAD_SETTING, SettingError, check_environment


def main() -> None:
    try:
        check_environment()
    except SettingError as error:
        from app.observability.logformat import log_bad_setting

        log_bad_setting(str(error))
        sys.exit(EXIT_BAD_SETTING)
    from gunicorn.app.wsgiapp import run

    sys.argv[0] = "gunicorn"  # Gunicorn's usage and process title
    sys.exit(run())


if __name__ == "__main__":
    main()
