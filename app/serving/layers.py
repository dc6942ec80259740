"""Layers of the n-gram versions that Keras does not have, registered so that
``keras.saving.load_model`` rebuilds them by name. Importing this module imports Keras:
only training and whatever loads ``model.keras`` with Keras (the OpenVINO export child)
import it, never an OpenVINO worker."""

from __future__ import annotations

import keras

from app.serving.transformer import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class RowSegment(keras.layers.Layer):
    """Columns ``start:stop`` of a row of ids: a model whose one input holds several
    segments (``TextEncoder``'s tokens, then its character n-grams) splits them with it."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, ids):
        return ids[:, self.start : self.stop]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
