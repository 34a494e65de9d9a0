"""Tutorial §3.4: evaluate and predict, on arrays and on a pipeline.

Changed from the tutorial: the model is wrapped by `client.remote(...)` and `kerasd.data.Dataset` stands in
for `tf.data.Dataset`.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential()
model.add(keras.layers.Dense(32, activation='relu'))
model.add(keras.layers.Dense(10, activation='softmax'))
model = client.remote(model)
model.compile(optimizer=keras.optimizers.Adam(0.001), loss='categorical_crossentropy', metrics=['accuracy'])

train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))
val_x, val_y = np.random.random((200, 72)), np.random.random((200, 10))
model.fit(train_x, train_y, epochs=2, batch_size=100, verbose=0)

print("evaluate:", model.evaluate(val_x, val_y, batch_size=32))  # [loss, accuracy], as Keras returns

# with a pipeline
test_x, test_y = np.random.random((1000, 72)), np.random.random((1000, 10))
test_data = kerasd.data.Dataset.from_tensor_slices((test_x, test_y))
test_data = test_data.batch(32).repeat()
print("evaluate pipeline:", model.evaluate(test_data, steps=30))
print("evaluate dict:", model.evaluate(val_x, val_y, batch_size=32, return_dict=True))

predictions = model.predict(val_x, batch_size=32)
print("predict:", predictions.shape, predictions.dtype)
print("rows sum to 1:", bool(np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5)))

# The same trained weights, pulled into a local Keras model, predict the same.
local = model.pull()
print("local == remote:", bool(np.allclose(local.predict(val_x, verbose=0), predictions, atol=1e-5)))
