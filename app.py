"""Local development entry point: ``python app.py [--port 5000] [--debug]``.

Runs the same ``create_app()`` on Flask's development server, on 127.0.0.1 only. It is
not how the service runs in production (that is Gunicorn, from the Procfile, see the
README); it is here for quick local experiments. ``import app`` finds the ``app/``
package, not this file, which is why the Procfile names the factory ``app:create_app()``.
"""

import argparse

from app import create_app

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="Flask debug mode: reloader and tracebacks (local only)",
    )
    args = parser.parse_args()
    create_app().run(host="127.0.0.1", port=args.port, debug=args.debug)
