"""Tutorial §4.1: the functional API, and the multi-input, multi-output and shared-layer models it allows.

Changed from the tutorial: the model is wrapped by `client.remote(...)`. The server receives the model as
`model.to_json()` writes it.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))
train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))

input_x = keras.Input(shape=(72,))
hidden1 = keras.layers.Dense(32, activation='relu')(input_x)
hidden2 = keras.layers.Dense(16, activation='relu')(hidden1)
pred = keras.layers.Dense(10, activation='softmax')(hidden2)

model = keras.Model(inputs=input_x, outputs=pred)
model = client.remote(model)
model.compile(optimizer=tf.keras.optimizers.Adam(0.001),
              loss=tf.keras.losses.categorical_crossentropy,
              metrics=['accuracy'])
history = model.fit(train_x, train_y, batch_size=32, epochs=5)
print("history keys:", sorted(history.history))

# Two named inputs, a shared layer, a residual connection and two named outputs: arrays go by name.
left = keras.Input(shape=(72,), name="left")
right = keras.Input(shape=(72,), name="right")
shared = keras.layers.Dense(32, activation="relu", name="shared")
merged = keras.layers.Add(name="residual")([shared(left), shared(right)])
classes = keras.layers.Dense(10, activation="softmax", name="classes")(merged)
score = keras.layers.Dense(1, name="score")(keras.layers.Concatenate()([merged, left]))
model = client.remote(keras.Model(inputs=[left, right], outputs={"classes": classes, "score": score}))
model.compile(optimizer="adam", loss={"classes": "categorical_crossentropy", "score": "mse"},
              loss_weights={"classes": 1.0, "score": 0.5}, metrics={"classes": ["accuracy"]})
other_x, score_y = np.random.random((1000, 72)), np.random.random((1000, 1))
history = model.fit({"left": train_x, "right": other_x}, {"classes": train_y, "score": score_y}, batch_size=100,
                    epochs=2, verbose=2)
print("multi-output:", sorted(history.history))
