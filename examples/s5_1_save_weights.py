"""Tutorial §5.1: saving and loading weights.

Changed from the tutorial: the model is wrapped by `client.remote(...)`, and the file names end in
`.weights.h5`, the only weights files Keras 3 reads and writes (`./weights/model` and `./model.h5` are
refused by Keras 3 itself, and by kerasd with the same message). A short fit gives the weights something to
be: the tutorial saves them untrained.
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential([
    layers.Dense(64, activation='relu'),
    layers.Dense(10, activation='softmax')])
model = client.remote(model)

model.compile(optimizer=tf.keras.optimizers.Adam(0.001),
              loss='categorical_crossentropy',
              metrics=['accuracy'])
train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))
model.fit(train_x, train_y, batch_size=100, epochs=2, verbose=0)

try:
    model.save_weights('./weights/model')
except ValueError as error:
    print("Keras 3 file names:", error)

model.save_weights('./weights/model.weights.h5')
model.load_weights('./weights/model.weights.h5')
model.save_weights('./model.weights.h5')
model.load_weights('./model.weights.h5')

# The saved file is Keras's own: a local model loads it and predicts what the server's model predicts.
local = tf.keras.Sequential([tf.keras.Input((72,)), layers.Dense(64, activation='relu'),
                             layers.Dense(10, activation='softmax')])
local.load_weights('./model.weights.h5')
remote_weights = model.get_weights()
print("weights match:", all(np.array_equal(a, b) for a, b in zip(local.get_weights(), remote_weights, strict=True)))

# Loaded weights are where the next job starts: evaluate them on the server and locally.
local.compile(loss='categorical_crossentropy', metrics=['accuracy'])
server_loss = model.evaluate(train_x, train_y, batch_size=100, verbose=0)[0]
local_loss = local.evaluate(train_x, train_y, batch_size=100, verbose=0)[0]
print("server loss == local loss:", bool(np.isclose(server_loss, local_loss, rtol=1e-5)))

# set_weights works too: zeros everywhere give a uniform softmax.
model.set_weights([np.zeros_like(w) for w in remote_weights])
print("uniform after zeroing:", bool(np.allclose(model.predict(train_x[:5], verbose=0), 0.1)))
