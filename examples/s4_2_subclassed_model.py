"""Tutorial §4.2: a subclassed model, `MyModel`.

Changed from the tutorial: a service runs no code sent by its users, so `MyModel` is the server's plugin
(`kerasd_plugins.seed`, the tutorial's class in Keras 3 form); the client imports the same class, and the
model is wrapped by `client.remote(...)`, which names it by its registered name.
"""

import os

import numpy as np
from tensorflow import keras

import kerasd
from kerasd_plugins.seed import MyModel

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))
print("plugins:", sorted(item["registered_name"] for item in client.plugins.list()))
train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))

model = MyModel(num_classes=10)
model = client.remote(model)

model.compile(optimizer=keras.optimizers.RMSprop(0.001),
              loss=keras.losses.categorical_crossentropy,
              metrics=['accuracy'])

history = model.fit(train_x, train_y, batch_size=16, epochs=5)
print("history keys:", sorted(history.history))
