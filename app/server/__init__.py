"""How Gunicorn serves the app: the Procfile's command (``python -m app.server``, in
``__main__``), the worker class (whole requests before a thread) and the listening
sockets the master holds. Imported by gunicorn.conf.py in the master, so nothing here
may import Flask, NumPy or the model."""
