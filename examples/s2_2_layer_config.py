"""Tutorial §2.2: configuring layers: activations, initializers, regularizers, constraints.

Changed from the tutorial: the model is wrapped by `client.remote(...)`.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential()
# Every argument of keras.layers.Dense, as the tutorial lists them.
model.add(keras.layers.Dense(
    units=32, activation=None, use_bias=True, kernel_initializer='glorot_uniform', bias_initializer='zeros',
    kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
    bias_constraint=None))

model.add(keras.layers.Dense(10, activation='sigmoid'))
model.add(keras.layers.Dense(10, activation=tf.nn.sigmoid))

model.add(keras.layers.Dense(32, kernel_initializer='orthogonal'))
model.add(keras.layers.Dense(32, kernel_initializer=keras.initializers.glorot_normal))

model.add(keras.layers.Dense(32, kernel_regularizer=keras.regularizers.l2(0.01)))
model.add(keras.layers.Dense(32, kernel_regularizer=keras.regularizers.l1(0.01)))

# The rest of the arguments by object, and an output layer for the tutorial's 10 targets.
model.add(keras.layers.Dense(32, bias_regularizer=keras.regularizers.l1_l2(l1=0.01, l2=0.01),
                             activity_regularizer=keras.regularizers.l2(0.001),
                             kernel_constraint=keras.constraints.MaxNorm(2.0),
                             bias_constraint=keras.constraints.NonNeg()))
model.add(keras.layers.Dense(10, activation=tf.nn.softmax))

model = client.remote(model)
model.compile(optimizer='adam', loss='categorical_crossentropy')
model.fit(np.random.random((1000, 72)), np.random.random((1000, 10)), epochs=1, batch_size=100, verbose=2)
model.summary()

# The server's model carries every configured argument, as Keras serializes it.
import json  # noqa: E402

layers = json.loads(model.to_json())["config"]["layers"]
dense = [layer["config"] for layer in layers if layer["class_name"] == "Dense"]
print("kernel_initializers:", [d["kernel_initializer"]["class_name"] for d in dense])
print("kernel_regularizers:", [(d["kernel_regularizer"] or {}).get("class_name") for d in dense])
print("activations:", [d["activation"] for d in dense])
print("constraints:", dense[7]["kernel_constraint"]["class_name"], dense[7]["bias_constraint"]["class_name"])
