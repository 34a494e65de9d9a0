"""Tutorial §3.2: training on numpy arrays, with validation data.

Changed from the tutorial: the model is wrapped by `client.remote(...)`. The arrays are uploaded once (the
server keeps them by content hash); the progress bar is fed by the job's live events.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential()
model.add(keras.layers.Dense(32, activation='relu'))
model.add(keras.layers.Dense(32, activation=tf.nn.relu))
model.add(keras.layers.Dense(10, activation=tf.nn.softmax))
model = client.remote(model)
model.compile(optimizer=keras.optimizers.Adam(0.001),
              loss=tf.losses.categorical_crossentropy,
              metrics=[keras.metrics.categorical_accuracy])

train_x = np.random.random((1000, 72))
train_y = np.random.random((1000, 10))

val_x = np.random.random((200, 72))
val_y = np.random.random((200, 10))

history = model.fit(train_x, train_y, epochs=10, batch_size=100, validation_data=(val_x, val_y))

print("job:", history.job["id"])
print("epochs:", history.epoch)
print("history keys:", sorted(history.history))
print("val_loss:", [round(v, 4) for v in history.history["val_loss"]])
