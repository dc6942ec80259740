"""``python -m app.spark``: the public command; the code lives in ``app.offline.spark``.

Also the file to hand ``spark-submit`` (with ``--py-files app.zip``): see the README.
"""

from app.offline.spark import spark_command

if __name__ == "__main__":
    spark_command()
