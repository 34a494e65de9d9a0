"""The tutorial's custom layer (§4.3) and subclassed model (§4.2), in Keras 3 form, as a kerasd plugin.

Clients use them by name: a layer `{"class_name": "MyLayer", "output_dim": 10}` in a Sequential or
functional spec, a model `{"type": "plugin_model", "class_name": "MyModel", "config": {"num_classes": 10},
"input_shape": [72]}`; in Keras JSON they appear under their registered names `kerasd>MyLayer` and
`kerasd>MyModel`, exactly as `model.to_json()` writes them where this module is imported.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerasd")
class MyLayer(layers.Layer):
    """A dense projection without bias: `inputs @ kernel`, kernel of shape (input width, output_dim)."""

    def __init__(self, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim

    def build(self, input_shape):
        # The tutorial's `tf.TensorShape((input_shape[1], output_dim))`, for inputs of any rank.
        self.kernel = self.add_weight(name="kernel1", shape=(input_shape[-1], self.output_dim),
                                      initializer="uniform", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="kerasd")
class MyModel(keras.Model):
    """Dense(32, relu) then Dense(num_classes, softmax), written as a subclassed model."""

    def __init__(self, num_classes: int = 10, name: str = "my_model", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.layer1 = layers.Dense(32, activation="relu")
        self.layer2 = layers.Dense(num_classes, activation="softmax")

    def build(self, input_shape):
        # Keras cannot see inside `call` to build the sublayers; build them so the weights exist.
        self.layer1.build(input_shape)
        self.layer2.build(self.layer1.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return self.layer2(self.layer1(inputs))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}
