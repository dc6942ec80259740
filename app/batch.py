"""``python -m app.batch``: the public command; the code lives in ``app.offline.batch``."""

from app.offline.batch import score_command

if __name__ == "__main__":
    score_command()
