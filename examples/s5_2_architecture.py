"""Tutorial §5.2: saving the architecture as JSON, and as YAML.

Changed from the tutorial: the model is wrapped by `client.remote(...)`. Keras removed `to_yaml` and
`model_from_yaml`; kerasd's remote model still has `to_yaml()` (the server converts the JSON config), and
YAML goes back to Keras through the same config.
"""

import json
import os
import pprint

import tensorflow as tf
import yaml
from tensorflow.keras import layers

import kerasd

client = kerasd.Client(os.environ.get("KERASD_URL", "http://127.0.0.1:8000"))

model = tf.keras.Sequential([
    layers.Dense(64, activation='relu', input_shape=(72,)),
    layers.Dense(10, activation='softmax')])
model = client.remote(model)
model.compile(optimizer=tf.keras.optimizers.Adam(0.001), loss='categorical_crossentropy', metrics=['accuracy'])

# serialized as JSON
json_str = model.to_json()
pprint.pprint(json.loads(json_str), depth=3)
fresh_model = tf.keras.models.model_from_json(json_str)
print("from JSON:", [layer.name for layer in fresh_model.layers], fresh_model.count_params())

# as YAML (needs pyyaml, as in the tutorial)
yaml_str = model.to_yaml()
print(yaml_str[:200])
fresh_model = tf.keras.models.model_from_json(json.dumps(yaml.safe_load(yaml_str)))
print("from YAML:", [layer.name for layer in fresh_model.layers], fresh_model.count_params())

# The same architecture straight from the REST resource.
print("architecture via client.models:", client.models.architecture(model.model_id, format="yaml") == yaml_str)
