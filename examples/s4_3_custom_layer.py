"""Tutorial §4.3: a custom layer, `MyLayer`.

Changed from the tutorial: `MyLayer` is the server's plugin (`kerasd_plugins.seed`), imported here too, and
the model is wrapped by `client.remote(...)`. Its config round-trips through get_config / from_config.
"""

import json
import os

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

import kerasd
from kerasd_plugins.seed import MyLayer

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))
train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))

model = tf.keras.Sequential(
            [
            MyLayer(10),
            layers.Activation('softmax')
            ])
model = client.remote(model)

model.compile(optimizer=tf.keras.optimizers.RMSprop(0.001),
              loss=tf.keras.losses.categorical_crossentropy,
              metrics=['accuracy'])

history = model.fit(train_x, train_y, batch_size=16, epochs=5)
print("history keys:", sorted(history.history))

# The trained model comes back with the plugin layer in it, and its config round-trips.
local = model.pull()
layer = local.layers[0]
print("round trip:", isinstance(layer, MyLayer) and MyLayer.from_config(layer.get_config()).output_dim == 10)
registered = [item.get("registered_name") for item in json.loads(model.to_json())["config"]["layers"]]
print("registered as:", [name for name in registered if name])
