"""Tutorial §3.1: configuring training with compile.

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
model.add(keras.layers.Dense(32, activation='relu'))
model.add(keras.layers.Dense(10, activation='softmax'))
model = client.remote(model)

model.compile(optimizer=keras.optimizers.Adam(0.001),
              loss=tf.losses.categorical_crossentropy,
              metrics=[keras.metrics.categorical_accuracy])
train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))
history = model.fit(train_x, train_y, epochs=1, batch_size=100, verbose=0)
print("metrics:", sorted(history.history))

# `loss` may also be Keras's function, and every compile argument Keras 3 still has is taken.
model.compile(optimizer='rmsprop', loss=keras.losses.categorical_crossentropy,
              metrics=['accuracy', keras.metrics.AUC(name='auc')], loss_weights=None, weighted_metrics=None,
              run_eagerly=False, steps_per_execution=1, jit_compile=False)
history = model.fit(train_x, train_y, epochs=1, batch_size=100, verbose=0)
print("metrics:", sorted(history.history))

# Arguments Keras removed answer with what replaced them.
for removed in ({"sample_weight_mode": "temporal"}, {"target_tensors": None}, {"distribute": None}):
    model.compile(optimizer='adam', loss='categorical_crossentropy', **removed)
    try:
        model.fit(train_x, train_y, epochs=1, verbose=0)
    except kerasd.ValidationError as error:
        print(f"{next(iter(removed))}: {error.status_code} {error.detail}")
