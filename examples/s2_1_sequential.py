"""Tutorial §2.1: stacking layers in a Sequential model.

Changed from the tutorial: the model is wrapped by `client.remote(...)`.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential()
model.add(keras.layers.Dense(32, activation='relu'))
model.add(keras.layers.Dense(32, activation=tf.nn.relu))  # a string ('relu') or the function itself
model.add(keras.layers.Dense(10, activation=tf.nn.softmax))
# model.add_layer(keras.layers.Dense(10, activation='softmax'))  # AttributeError, as in the tutorial

model = client.remote(model)
model.summary()  # no input shape yet: as in Keras, the model is built when it first sees data

# One epoch on the tutorial's random data: the worker builds the model for 72 inputs and trains it.
model.compile(optimizer='adam', loss='categorical_crossentropy')
history = model.fit(np.random.random((1000, 72)), np.random.random((1000, 10)), epochs=1, batch_size=100, verbose=2)
model.summary()
print("layers:", [layer.name for layer in model.layers])
print("history:", history.history)
