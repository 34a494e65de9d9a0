"""Tutorial §3.3: training on a tf.data pipeline.

Changed from the tutorial: `kerasd.data.Dataset` in place of `tf.data.Dataset` (the same calls; the worker
builds the tf.data pipeline from the uploaded arrays), and the model is wrapped by `client.remote(...)`.
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
val_x, val_y = np.random.random((200, 72)), np.random.random((200, 10))

dataset = kerasd.data.Dataset.from_tensor_slices((train_x, train_y))
dataset = dataset.batch(32)
dataset = dataset.repeat()

val_dataset = kerasd.data.Dataset.from_tensor_slices((val_x, val_y))
val_dataset = val_dataset.batch(32)
val_dataset = val_dataset.repeat()

history = model.fit(dataset, epochs=5, steps_per_epoch=30, validation_data=val_dataset, validation_steps=3)
print("epochs:", history.epoch)
print("history keys:", sorted(history.history))

# shuffle, drop_remainder and prefetch are sent the same way.
shuffled = (kerasd.data.Dataset.from_tensor_slices((train_x, train_y))
            .shuffle(1000, seed=1).batch(100, drop_remainder=True).prefetch(kerasd.data.AUTOTUNE))
history = model.fit(shuffled, epochs=2, verbose=2)
print("batches per epoch:", len(shuffled))
