"""Server-side plugins of kerasd (DESIGN.md §4): custom layers and subclassed models are code, so clients
cannot send them; a server enables plugin modules (KERASD_PLUGINS, comma-separated) and clients name the
classes those modules register with `keras.saving.register_keras_serializable`.

`kerasd_plugins.seed` is the example plugin: the tutorial's MyLayer (§4.3) and MyModel (§4.2). A plugin
is any importable module; everything it registers becomes nameable in specs and Keras JSON, and is listed
by `GET /v1/plugins`. The spec checker's sandboxes and the workers import the enabled modules, the API
process never does.
"""
