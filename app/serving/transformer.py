"""Version 3's network: the MiniLM encoder (BERT, 6 layers × 384 wide, 12 heads) as Keras
layers, mean-pooled over the real tokens, with a classification head.

Imported by training and by whatever loads ``model.keras`` with Keras (the OpenVINO
export child, the TensorFlow serving path), never by an OpenVINO worker: importing this
module imports Keras. The layers are registered, so ``keras.saving.load_model`` rebuilds
them by name.

The model takes one input, the token ids (``PAD_ID`` = 0 pads a row), and derives the
attention mask and the segment ids itself, so a version 3 folder fits the same
one-input, one-output contract as the n-gram versions, except that its rows may have any
length. The projections are ``einsum`` on kernels shaped ``(width, heads, head_width)``,
with no reshape: a reshape in the exported graph fixed the batch size (measured with
KerasHub's backbone), an einsum keeps both the batch and the length free. Outside
training, attention is ``ops.dot_product_attention`` (one op in OpenVINO) and layer
normalisation is written in the form OpenVINO fuses (``layer_norm``); training packs the
projections into plain products (``model.train_v3.fuse_projections``).
``load_minilm_weights`` maps the published checkpoint (Hugging Face's BERT names) onto it.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
from keras import ops

PACKAGE = "sentiment"


def layer_norm(layer: keras.layers.LayerNormalization, x):
    """``layer`` applied to ``x`` (its own weights and epsilon), written out as
    ``(x - mean) / sqrt(variance + epsilon)``: the form OpenVINO fuses into one
    normalisation op. Keras' layer computes the same with a reciprocal square root that
    the export leaves as eight separate ops."""
    # The axis as a one-element tuple: the fused op takes its axes as a list, and a bare
    # -1 makes OpenVINO's fusion fail at compile time.
    centred = x - ops.mean(x, axis=(-1,), keepdims=True)
    variance = ops.mean(ops.square(centred), axis=(-1,), keepdims=True)
    return centred / ops.sqrt(variance + layer.epsilon) * layer.gamma + layer.beta


@keras.saving.register_keras_serializable(package=PACKAGE)
class BertEmbeddings(keras.layers.Layer):
    """Word + position + segment-0 embeddings, then layer normalisation."""

    def __init__(self, vocabulary_size, max_length, width, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_length = max_length
        self.width = width
        self.epsilon = epsilon
        self.norm = keras.layers.LayerNormalization(epsilon=epsilon, name="norm")

    def build(self, input_shape):
        self.words = self.add_weight(shape=(self.vocabulary_size, self.width), name="words")
        self.positions = self.add_weight(shape=(self.max_length, self.width), name="positions")
        self.segment = self.add_weight(shape=(self.width,), name="segment", initializer="zeros")
        self.norm.build((None, None, self.width))

    def call(self, ids):
        # Position ids from a running count, not from the input's shape: Keras' OpenVINO
        # export fixes a shape read at trace time (the exported graph then gave every
        # row the first position's embedding).
        position_ids = ops.cumsum(ops.ones_like(ids), axis=1) - 1
        positions = ops.take(self.positions, position_ids, axis=0)
        x = ops.take(self.words, ids, axis=0) + positions + self.segment
        return layer_norm(self.norm, x)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "max_length": self.max_length,
            "width": self.width,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class EncoderBlock(keras.layers.Layer):
    """Post-norm BERT block: self-attention, add & norm, GELU feed-forward, add & norm."""

    def __init__(self, width, heads, inner, dropout=0.1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads, self.inner = width, heads, inner
        self.dropout, self.epsilon = dropout, epsilon
        head_width = width // heads
        self.scale = 1.0 / math.sqrt(head_width)

        def projection(name):
            return keras.layers.EinsumDense(
                "bld,dhk->blhk", output_shape=(None, heads, head_width), bias_axes="hk", name=name
            )

        self.query, self.key, self.value = (
            projection("query"),
            projection("key"),
            projection("value"),
        )
        self.attention_output = keras.layers.EinsumDense(
            "blhk,hkd->bld", output_shape=(None, width), bias_axes="d", name="attention_output"
        )
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=epsilon, name="attention_norm"
        )
        self.intermediate = keras.layers.Dense(inner, name="intermediate")
        self.output_dense = keras.layers.Dense(width, name="output")
        self.output_norm = keras.layers.LayerNormalization(epsilon=epsilon, name="output_norm")
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        shape = (None, None, self.width)
        for layer in (self.query, self.key, self.value):
            layer.build(shape)
        self.attention_output.build((None, None, self.heads, self.width // self.heads))
        self.attention_norm.build(shape)
        self.intermediate.build(shape)
        self.output_dense.build((None, None, self.inner))
        self.output_norm.build(shape)

    def call(self, x, mask_bias, training=False):
        q, k, v = self.query(x), self.key(x), self.value(x)
        if training:  # BERT's dropout on the attention weights
            scores = ops.einsum("bqhk,bshk->bhqs", q, k) * self.scale + mask_bias
            weights = self.drop(ops.softmax(scores, axis=-1), training=training)
            context = ops.einsum("bhqs,bshk->bqhk", weights, v)
        else:  # the same product, as one attention op (OpenVINO's fused kernel)
            context = ops.dot_product_attention(q, k, v, bias=mask_bias, scale=self.scale)
        attended = self.drop(self.attention_output(context), training=training)
        x = layer_norm(self.attention_norm, x + attended)
        hidden = keras.activations.gelu(self.intermediate(x), approximate=False)
        output = self.drop(self.output_dense(hidden), training=training)
        return layer_norm(self.output_norm, x + output)

    def get_config(self):
        return {
            **super().get_config(),
            "width": self.width,
            "heads": self.heads,
            "inner": self.inner,
            "dropout": self.dropout,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MiniLMEncoder(keras.layers.Layer):
    """Token ids → one vector per row: the mean of the last block's outputs over the
    row's real tokens (ids other than 0), as the sentence-transformers model pools."""

    def __init__(
        self,
        vocabulary_size=30522,
        max_length=512,
        width=384,
        heads=12,
        inner=1536,
        blocks=6,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size, self.max_length, self.width = vocabulary_size, max_length, width
        self.heads, self.inner, self.blocks, self.dropout = heads, inner, blocks, dropout
        self.embeddings = BertEmbeddings(vocabulary_size, max_length, width, name="embeddings")
        self.encoder_blocks = [
            EncoderBlock(width, heads, inner, dropout, name=f"block_{i}") for i in range(blocks)
        ]
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        self.embeddings.build(input_shape)
        for block in self.encoder_blocks:
            block.build((None, None, self.width))

    def call(self, ids, training=False):
        present = ops.not_equal(ids, 0)
        mask = ops.cast(present, self.compute_dtype)
        # A select, not (1 - mask) * -1e9: in a graph quantized to int8, OpenVINO's CPU
        # plugin reads a Convert → Subtract → Multiply chain as a dequantization and
        # rewrote this one wrongly (version 4 in int8 fell to 0.47 macro-F1 on the dev
        # set; measured 2026-12-05). The same numbers in f32.
        mask_bias = ops.cast(ops.where(present, 0.0, -1e9), self.compute_dtype)
        mask_bias = mask_bias[:, None, None, :]
        x = self.drop(self.embeddings(ids), training=training)
        for block in self.encoder_blocks:
            x = block(x, mask_bias, training=training)
        total = ops.sum(x * mask[:, :, None], axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "max_length": self.max_length,
            "width": self.width,
            "heads": self.heads,
            "inner": self.inner,
            "blocks": self.blocks,
            "dropout": self.dropout,
        }


def load_minilm_weights(encoder: MiniLMEncoder, safetensors_file: Path) -> None:
    """Copy the published checkpoint (BERT's Hugging Face names) into ``encoder``."""
    from safetensors.numpy import load_file

    weights = load_file(str(safetensors_file))
    width, heads = encoder.width, encoder.heads
    head_width = width // heads

    def dense(name):  # torch Linear (out, in) → Keras (in, out)
        return [weights[f"{name}.weight"].T, weights[f"{name}.bias"]]

    def norm(name):
        return [weights[f"{name}.weight"], weights[f"{name}.bias"]]

    embeddings = encoder.embeddings
    embeddings.words.assign(weights["embeddings.word_embeddings.weight"])
    embeddings.positions.assign(weights["embeddings.position_embeddings.weight"])
    embeddings.segment.assign(weights["embeddings.token_type_embeddings.weight"][0])
    embeddings.norm.set_weights(norm("embeddings.LayerNorm"))
    for i, block in enumerate(encoder.encoder_blocks):
        prefix = f"encoder.layer.{i}."
        for layer, name in ((block.query, "query"), (block.key, "key"), (block.value, "value")):
            kernel, bias = dense(prefix + f"attention.self.{name}")
            layer.set_weights(
                [kernel.reshape(width, heads, head_width), bias.reshape(heads, head_width)]
            )
        kernel, bias = dense(prefix + "attention.output.dense")
        block.attention_output.set_weights([kernel.reshape(heads, head_width, width), bias])
        block.attention_norm.set_weights(norm(prefix + "attention.output.LayerNorm"))
        block.intermediate.set_weights(dense(prefix + "intermediate.dense"))
        block.output_dense.set_weights(dense(prefix + "output.dense"))
        block.output_norm.set_weights(norm(prefix + "output.LayerNorm"))
