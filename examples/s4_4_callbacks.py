"""Tutorial §4.4: callbacks, EarlyStopping and TensorBoard.

Changed from the tutorial: the model is wrapped by `client.remote(...)`. The callbacks run on the worker as
declared callbacks; TensorBoard's logs come back into `./logs`, as if they had been written here.
"""

import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow import keras

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential()
model.add(keras.layers.Dense(32, activation='relu'))
model.add(keras.layers.Dense(10, activation='softmax'))
model = client.remote(model)
model.compile(optimizer=keras.optimizers.RMSprop(0.001), loss=tf.keras.losses.categorical_crossentropy,
              metrics=['accuracy'])

train_x, train_y = np.random.random((1000, 72)), np.random.random((1000, 10))
val_x, val_y = np.random.random((200, 72)), np.random.random((200, 10))

callbacks = [
    tf.keras.callbacks.EarlyStopping(patience=2, monitor='val_loss'),
    tf.keras.callbacks.TensorBoard(log_dir='./logs')
]
history = model.fit(train_x, train_y, batch_size=16, epochs=5, callbacks=callbacks, validation_data=(val_x, val_y))

print("epochs run:", len(history.epoch))
print("early stopping:", (history.job.get("result") or {}).get("early_stopping"))
events = sorted(str(path.relative_to("logs")) for path in Path("logs").rglob("*") if path.is_file())
print("tensorboard files:", len(events), events[:4])

# Every EarlyStopping argument is taken; a val_loss that keeps rising stops the job early.
stopper = keras.callbacks.EarlyStopping(monitor='val_loss', min_delta=0, patience=2, verbose=1, mode='auto',
                                        baseline=None, restore_best_weights=True, start_from_epoch=0)
model.compile(optimizer=keras.optimizers.SGD(0.5), loss='categorical_crossentropy')
history = model.fit(train_x, train_y, batch_size=100, epochs=50, callbacks=[stopper],
                    validation_data=(val_x, val_y), verbose=0)
print("stopped after", len(history.epoch), "of 50 epochs")
