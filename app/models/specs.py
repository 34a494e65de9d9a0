"""Model specs as users write them: the forms `POST /v1/models` takes, as pydantic models (pure Python).

A `type` picks the form; a body that is a Keras config itself, with `class_name` at the top, is Keras JSON.
app.models.keras_documents translates each form into the config document Keras reads.
- `sequential`: layers in order (tutorial §2.1, §2.2);
- `functional`: named inputs, layers called on earlier outputs, shared layers, merges (tutorial §4.1);
- `plugin_model`: a subclassed model of an enabled server-side plugin (tutorial §4.2);
- `keras_json`: the config `model.to_json()` writes; `yaml`: the same config as YAML (tutorial §5.2).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StrictInt,
    Tag,
    TypeAdapter,
    model_validator,
)

NAME = r"^[A-Za-z0-9_.-]{1,200}$"
DTYPE = r"^[a-z0-9_]{1,20}$"
# JSON or YAML architectures larger than this are not model configs (ResNet50's JSON is 170 KB).
MAX_ARCHITECTURE_BYTES = 16 * 1024 * 1024
# A dimension is a whole number: `true` or 3.0 is not one (pydantic would coerce them).
Dimension = StrictInt

EXAMPLE_SEQUENTIAL = {
    "type": "sequential",
    "name": "seed_mlp",
    "input_shape": [72],
    "layers": [
        {"class_name": "Dense", "units": 32, "activation": "relu"},
        {"class_name": "Dense", "units": 32, "activation": "tf.nn.relu"},
        {"class_name": "Dense", "units": 10, "activation": "softmax"},
    ],
}
EXAMPLE_FUNCTIONAL = {
    "type": "functional",
    "name": "two_towers",
    "inputs": [{"name": "left", "shape": [72]}, {"name": "right", "shape": [72]}],
    "layers": [
        {"name": "shared", "class_name": "Dense", "units": 32, "activation": "relu", "inputs": "left"},
        {"name": "shared_right", "call": "shared", "inputs": "right"},
        {"name": "merged", "class_name": "Concatenate", "inputs": ["shared", "shared_right"]},
        {"name": "hidden", "class_name": "Dense", "units": 64, "activation": "relu", "inputs": "merged"},
        {"name": "residual", "class_name": "Add", "inputs": ["hidden", "merged"]},
        {"name": "label", "class_name": "Dense", "units": 10, "activation": "softmax", "inputs": "residual"},
        {"name": "score", "class_name": "Dense", "units": 1, "inputs": "residual"},
    ],
    "outputs": ["label", "score"],
}


class LayerSpec(BaseModel):
    """One layer: `class_name` plus its Keras arguments, either flat or under `config`."""

    model_config = ConfigDict(extra="allow")

    class_name: str = Field(min_length=1, max_length=200, examples=["Dense"])
    config: dict[str, Any] | None = None

    def arguments(self) -> dict[str, Any]:
        flat = dict(self.model_extra or {})
        if self.config is not None and flat:
            raise ValueError("give a layer's arguments either flat or under 'config', not both")
        return dict(self.config) if self.config is not None else flat


class SequentialSpec(BaseModel):
    """`keras.Sequential`: layers in order (tutorial §2.1, §2.2)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_SEQUENTIAL]})

    type: Literal["sequential"] = "sequential"
    name: str = Field(default="sequential", pattern=NAME)
    # Without it the model is built when the data is known, as Keras does.
    input_shape: list[Dimension | None] | None = Field(default=None, max_length=8)
    # `int32` for a model that starts with an Embedding.
    input_dtype: str | None = Field(default=None, pattern=DTYPE)
    layers: list[LayerSpec] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _positive_dims(self) -> SequentialSpec:
        if self.input_shape is not None and any(d is not None and d <= 0 for d in self.input_shape):
            raise ValueError("input_shape dimensions must be positive integers (or null for any size)")
        return self


class InputSpec(BaseModel):
    """`keras.Input(shape=..., name=..., dtype=...)`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    shape: list[Dimension | None] = Field(max_length=8)
    dtype: str = Field(default="float32", pattern=DTYPE)
    batch_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _positive_dims(self) -> InputSpec:
        if any(d is not None and d <= 0 for d in self.shape):
            raise ValueError("shape dimensions must be positive integers (or null for any size)")
        return self


TensorNames = str | list[str]


class CallSpec(BaseModel):
    """One layer call of a functional graph: a new layer (`class_name` and its arguments) or another
    call of an earlier layer (`call`: its name; a shared layer), on the tensors named in `inputs`.

    `inputs` is one tensor name (`layer(x)`), a list (`Concatenate()([a, b])`), or a dict of call
    arguments (`MultiHeadAttention()(query=q, value=v)`); `lstm[1]` names a call's second output. The
    call's own `name` names its output (and, for a new layer, the layer)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=NAME)
    class_name: str | None = Field(default=None, min_length=1, max_length=200)
    call: str | None = Field(default=None, pattern=NAME)
    inputs: TensorNames | dict[str, TensorNames]
    # Non-tensor call arguments, e.g. {"use_causal_mask": true}.
    call_arguments: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CallSpec:
        if (self.class_name is None) == (self.call is None):
            raise ValueError("give either class_name (a new layer) or call (an earlier layer to call again)")
        if self.call is not None and (self.model_extra or self.config is not None):
            raise ValueError("a call of an earlier layer takes no layer arguments; they are the earlier layer's")
        return self

    def layer(self) -> LayerSpec:
        return LayerSpec(class_name=self.class_name or "", config=self.config, **(self.model_extra or {}))


class FunctionalSpec(BaseModel):
    """`keras.Model(inputs, outputs)` from a graph of layer calls (tutorial §4.1)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_FUNCTIONAL]})

    type: Literal["functional"]
    name: str = Field(default="functional", pattern=NAME)
    inputs: list[InputSpec] = Field(min_length=1, max_length=100)
    layers: list[CallSpec] = Field(min_length=1, max_length=2000)
    outputs: TensorNames


class PluginModelSpec(BaseModel):
    """A subclassed model of an enabled plugin (tutorial §4.2), e.g. `MyModel(num_classes=10)`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"type": "plugin_model", "class_name": "MyModel", "config": {"num_classes": 10}, "input_shape": [72]}]})

    type: Literal["plugin_model"]
    class_name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    input_shape: list[Dimension | None] | None = Field(default=None, max_length=8)


class KerasJsonSpec(BaseModel):
    """The config `model.to_json()` writes, as an object or as the JSON text (tutorial §5.2).

    A request body that is that config itself (`class_name` at the top) is read the same way."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["keras_json"]
    architecture: dict[str, Any] | str
    name: str | None = Field(default=None, pattern=NAME)


class YamlSpec(BaseModel):
    """The same config as YAML (Keras removed `to_yaml`; kerasd reads and writes it)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["yaml"]
    yaml: str = Field(max_length=MAX_ARCHITECTURE_BYTES)
    name: str | None = Field(default=None, pattern=NAME)
    # The document, once read out of the API process (app/models/yaml_parser.py); None: not read yet.
    _document: Any = PrivateAttr(default=None)

    def parsed(self) -> Any:
        return self._document

    def set_parsed(self, document: Any) -> None:
        self._document = document


def _form_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "sequential")
    return getattr(value, "type", None)


ModelSpecForm = Annotated[
    Annotated[SequentialSpec, Tag("sequential")]
    | Annotated[FunctionalSpec, Tag("functional")]
    | Annotated[PluginModelSpec, Tag("plugin_model")]
    | Annotated[KerasJsonSpec, Tag("keras_json")]
    | Annotated[YamlSpec, Tag("yaml")],
    Discriminator(_form_of, custom_error_type="invalid_spec_type",
                  custom_error_message="type must be one of sequential, functional, plugin_model, keras_json, "
                                       "yaml (or send the config model.to_json() writes)"),
]
MODEL_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(ModelSpecForm)
SPEC_TAGS = ("sequential", "functional", "plugin_model", "keras_json", "yaml")
SPEC_FORMS = dict(zip(SPEC_TAGS, (SequentialSpec, FunctionalSpec, PluginModelSpec, KerasJsonSpec, YamlSpec),
                      strict=True))


def parse_model_spec(body: Any) -> Any:
    """A JSON body as one of the spec forms (pydantic.ValidationError when it is none of them)."""
    if isinstance(body, dict) and "type" not in body and "class_name" in body:
        body = {"type": "keras_json", "architecture": body}
    return MODEL_SPEC_ADAPTER.validate_python(body)
