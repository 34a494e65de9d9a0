"""Tutorial §5.3: saving the whole model, and loading it back.

Changed from the tutorial: the model is wrapped by `client.remote(...)`. `save` writes what the worker
saved: `.h5` (legacy HDF5, as in the tutorial) or `.keras` (Keras 3's format); `keras.models.load_model`
reads both.
"""

import os

import numpy as np
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))

model = keras.Sequential([
    keras.layers.Dense(10, activation='softmax', input_shape=(72,)),
    keras.layers.Dense(10, activation='softmax')
])
model = client.remote(model)
model.compile(optimizer='rmsprop',
              loss='categorical_crossentropy',
              metrics=['accuracy'])
model.fit(train_x, train_y, batch_size=32, epochs=5)
model.save('all_model.h5')
model.save('all_model.keras')

remote_predictions = model.predict(train_x[:50], verbose=0)
model = keras.models.load_model('all_model.h5')
print("h5 predicts as the server:", bool(np.allclose(model.predict(train_x[:50], verbose=0), remote_predictions,
                                                     atol=1e-5)))
model = keras.models.load_model('all_model.keras')
print("keras predicts as the server:", bool(np.allclose(model.predict(train_x[:50], verbose=0), remote_predictions,
                                                        atol=1e-5)))
print("compiled:", model.optimizer.__class__.__name__, model.loss)
