"""The ``Twin`` interface for a ``keras.Model`` (TensorFlow backend); a compiled model carries
its recipe (optimizer, loss, learning-rate schedule)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from twinbench.impls import frameworks  # noqa: F401  (import order)
import keras
import tensorflow as tf

from twinbench.impls import layer_maps, randomness
from twinbench.impls.adapter import (CandidateError, LayerRecord, NoRecipe, ParamLayer, Trace, Twin,
                           batch_order, check_canonical_shape, is_recurrent_cell, layer_kind)

# Keras's random functions other than dropout and normal: a training-mode forward that calls one
# of them draws random numbers that cannot be shared with the partner (random preprocessing
# layers, AlphaDropout, a custom layer).
_OTHER_RANDOM = ("uniform", "categorical", "randint", "truncated_normal", "shuffle", "gamma", "binomial", "beta")

_CANON = {  # the canonical layout is Keras's: names are checked (impls/layer_maps.py), values kept
    kind: {name: name for name in names} for kind, names in layer_maps.KERAS_TENSORS.items()
}
_RECURRENT = ("gru", "lstm")
_ORDERS: dict = {}  # KerasTwin._order_key -> {leaf index: position in a forward pass}


def _kind(layer) -> str:
    """A layer's kind; a generic ``keras.layers.RNN`` is of its cell's kind (RNN(GRUCell(...)) is a GRU)."""
    kind = layer_kind(type(layer).__name__)
    if kind == "other" and isinstance(layer, keras.layers.RNN):
        return layer_kind(type(layer.cell).__name__)
    return kind


def _short(var) -> str:
    return var.path.rsplit("/", 1)[-1] if getattr(var, "path", None) else var.name


@contextlib.contextmanager
def _recording(layers, callback):
    """Call ``callback(layer, inputs, outputs)`` after each of ``layers`` runs."""
    watched = {id(layer) for layer in layers}
    original = keras.layers.Layer.__call__

    def __call__(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if id(self) in watched:
            callback(self, args[0] if args else None, out)
        return out

    keras.layers.Layer.__call__ = __call__
    try:
        yield
    finally:
        keras.layers.Layer.__call__ = original


def _np(t):
    try:
        return keras.ops.convert_to_numpy(t)
    except Exception:
        return None


def _tape_loss_and_grads(model, trainable, x, y, training: bool):
    """The recipe's loss on (x, y) and its gradient for each of ``trainable`` (zeros where the loss
    does not depend on it): the one computation of the eval-mode, eager and compiled steps."""
    with tf.GradientTape() as tape:
        out = model(x, training=training)
        loss = model.compute_loss(x=x, y=y, y_pred=out, training=training)
    grads = tape.gradient(loss, trainable)
    return loss, [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, trainable)]


@contextlib.contextmanager
def _backend_random(dropout, normal, other):
    """Keras's backend ``random.dropout`` and ``random.normal`` replaced by ``dropout`` and
    ``normal`` for the block, and each other random function (``_OTHER_RANDOM``) by
    ``other(name, original)``; all restored after."""
    from keras.src import backend

    rnd = backend.random
    saved = {name: getattr(rnd, name) for name in ("dropout", "normal") + _OTHER_RANDOM}
    rnd.dropout, rnd.normal = dropout, normal
    for name in _OTHER_RANDOM:
        setattr(rnd, name, other(name, saved[name]))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(rnd, name, fn)


def _normal_kind(mean) -> str:
    """What a ``random.normal`` draw is: Gaussian dropout multiplies by N(1, rate), noise adds N(0, rate)."""
    return "gaussian_dropout" if float(mean) == 1.0 else "gaussian_noise"


def _noise_shape(inputs, noise_shape) -> tuple:
    """(the dropout noise's shape, the input's shape) as ints: keras's ``noise_shape`` may leave
    axes as None (the input's)."""
    shape = tuple(int(d) for d in inputs.shape)
    return (shape if noise_shape is None else tuple(s if n is None else int(n) for n, s in zip(noise_shape, shape))), shape


# Training-mode steps with shared masks run eagerly (~2x a compiled step) until the same draws have
# been seen this many times in a row for one batch shape; then they run compiled (``_FedStep``),
# every RECHECK_EVERY-th step eagerly again (``_FedState``). A candidate that diverges within the
# first steps never pays for the compilation.
FED_AFTER = 8
RECHECK_EVERY = 20


@dataclass(frozen=True)
class _Draw:
    """One fed draw of a training-mode forward: what ``randomness.apply`` was asked for, where."""

    kind: str        # "dropout" | "gaussian_noise" | "gaussian_dropout"
    rate: float
    noise: tuple     # the noise's shape (canonical: Keras's own layout)
    shape: tuple     # the input's shape
    where: str       # the layer that drew it
    after: str       # the stream's parameterised layer at the draw
    offset: float    # added to the factor (Gaussian noise's mean)
    dtype: str

    def value(self, stream) -> np.ndarray:
        stream.after = self.after
        factor = randomness.apply(stream, self.kind, self.rate, self.noise, self.shape, self.where)
        return (factor + np.float32(self.offset)) if self.offset else factor


class _FedState:
    """One batch shape's training-mode steps: eager until FED_AFTER in a row drew alike, then
    compiled (``_FedStep``), except every RECHECK_EVERY-th, which runs eagerly and must draw as
    the compiled step does (a layer whose Python state changed would otherwise stay frozen at
    its traced behaviour); eager for good once the trace is refused or a recheck differs."""

    def __init__(self):
        self.draws, self.alike, self.step, self.eager, self.calls = None, 0, None, False, 0

    def compiled(self, x, y):
        """The compiled step to run now, or None: run this step eagerly (then call ``saw``)."""
        if self.eager or self.step is None:
            return None
        if not self.step.traced:
            try:
                self.step.trace(x, y)
                self.step.traced = True
            except Exception:  # noqa: BLE001 -- draws that differ when traced, or a call that cannot be traced
                self.eager = True
                return None
        self.calls += 1
        return None if self.calls % RECHECK_EVERY == 0 else self.step

    def saw(self, draws: list, model) -> None:
        """An eager step drew ``draws``."""
        if self.eager:
            return
        if self.step is not None:  # a recheck
            self.eager = draws != self.step.draws
            return
        self.alike = self.alike + 1 if draws == self.draws else 1
        self.draws = draws
        if self.alike >= FED_AFTER:
            self.step = _FedStep(model, draws)


class _PlanChanged(Exception):
    """A traced training step drew differently from the draws it was compiled for."""


class _FedStep:
    """Loss and gradients of one training-mode step as one tf.function whose masks and noise are
    inputs: each backend draw in the traced call takes the next input, in the order (kind, rate,
    shape) of ``draws``, which is checked while tracing. A call draws the values from the stream
    exactly as the eager step would (the same ops recorded, the same numbers)."""

    def __init__(self, model, draws):
        self.model, self.draws, self.trainable = model, list(draws), model.trainable_variables
        self.fn, self.traced = tf.function(self._step), False

    def _step(self, x, y, factors):
        used, outer = [], tf.compat.v1.get_default_graph()

        def take(kind, rate, noise):
            if tf.compat.v1.get_default_graph() is not outer:  # a branch of a cond, a loop's body
                raise _PlanChanged("a draw that may or may not run (inside a conditional or a loop)")
            if len(used) >= len(self.draws):
                raise _PlanChanged(f"a draw beyond the {len(self.draws)} compiled for")
            want = self.draws[len(used)]
            if (want.kind, want.rate, want.noise) != (kind, float(rate), noise):
                raise _PlanChanged(f"draw {len(used)}: {kind} {rate} {noise}, compiled for {want}")
            used.append(want)
            return factors[len(used) - 1]

        def dropout(inputs, rate, noise_shape=None, seed=None):
            return inputs * tf.cast(take("dropout", rate, _noise_shape(inputs, noise_shape)[0]), inputs.dtype)

        def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
            return tf.cast(take(_normal_kind(mean), stddev, tuple(int(d) for d in shape)), dtype or "float32")

        def other(name, original):
            def refuse(*args, **kwargs):
                raise _PlanChanged(f"an unrecognised random function (keras.random.{name})")
            return refuse

        with _backend_random(dropout, normal, other):
            result = _tape_loss_and_grads(self.model, self.trainable, x, y, training=True)
        if len(used) != len(self.draws):
            raise _PlanChanged(f"{len(used)} draws, compiled for {len(self.draws)}")
        return result

    def trace(self, x, y) -> None:
        """Compile for (x, y)'s shapes before any mask is drawn; raises when the traced call
        draws differently (``_PlanChanged``) or cannot be traced."""
        self.fn.get_concrete_function(tf.TensorSpec(x.shape, x.dtype), tf.TensorSpec(y.shape, y.dtype),
                                      [tf.TensorSpec(d.noise, d.dtype) for d in self.draws])

    def __call__(self, x, y, stream):
        factors = [tf.constant(d.value(stream), dtype=d.dtype) for d in self.draws]
        return self.fn(x, y, factors)


class KerasTwin(Twin):
    framework = "keras"

    def __init__(self, name, network, model, output="logits"):
        compiled = getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None
        super().__init__(name, network, output, has_recipe=compiled)
        self.model = model
        self.device = "cpu"

    def _input(self, x):
        return np.asarray(x, dtype=np.int32 if self.net.input.kind == "tokens" else np.float32)  # Keras ids: int32

    def _target(self, y):
        return np.asarray(y, dtype=self.net.target.dtype)

    def _call(self, x, training=False):
        try:
            return self.model(self._input(x), training=training)
        except Exception as exc:
            raise CandidateError(f"call raised {type(exc).__name__}: {exc}") from exc

    def forward(self, x, training=False, stream=None):
        with self._shared_randomness(stream if training else None):
            out = _np(self._call(x, training))
        if out is None:
            raise CandidateError("call did not return a tensor")
        return out

    def forward_on(self, device, x):
        """The eval-mode forward pinned to ``device`` ("cpu" or "gpu"): TensorFlow would otherwise
        place it on the GPU whenever it sees one, and a CPU-vs-GPU comparison would compare the GPU
        with itself."""
        with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
            return self.forward(x)

    # -- structure -----------------------------------------------------------------------------
    def _leaves(self):
        """The layers that hold no other layer; a recurrent layer counts as one with its cell."""
        layers = self.model._flatten_layers(include_self=False, recursive=True)
        cells = {id(c) for l in layers if isinstance(l, keras.layers.RNN)
                 for c in l._flatten_layers(include_self=False, recursive=True)}
        return [l for l in layers if id(l) not in cells and not isinstance(l, keras.layers.InputLayer)
                and (isinstance(l, keras.layers.RNN) or not list(l._flatten_layers(include_self=False)))]

    def _order_key(self, leaves):
        """What decides the order the leaves run in, when it can be known without running them:
        the factory and, leaf by leaf, its type and weight shapes (None while a leaf is unbuilt:
        a subclass model gets its weights from its first call)."""
        factory = getattr(getattr(self, "spec", None), "factory", None)
        if factory is None or not all(l.built for l in leaves):
            return None
        return factory, tuple((type(l).__qualname__, tuple(tuple(w.shape) for w in l.weights)) for l in leaves)

    def _execution_order(self):
        """{id(leaf): its position in a forward pass}. Found by running one, once per factory and
        structure: fresh builds of one factory (the initialisation law's 128, a check's own build)
        reuse it by leaf index."""
        if not hasattr(self, "_order"):
            leaves = self._leaves()
            key = self._order_key(leaves)
            known = _ORDERS.get(key) if key is not None else None
            if known is not None:
                self._order = {id(leaves[i]): position for i, position in known.items()}
                return self._order
            order = {}
            shape = self.net.input.batch_shape(2)
            with _recording(leaves, lambda l, i, o: order.setdefault(id(l), len(order))):
                try:
                    self.forward(np.ones(shape))
                except CandidateError:
                    pass
            self._order = order
            if key is not None:
                _ORDERS[key] = {i: order[id(l)] for i, l in enumerate(leaves) if id(l) in order}
        return self._order

    def _param_leaves(self):
        leaves = [l for l in self._leaves() if l.weights]
        order = self._execution_order()
        return sorted(leaves, key=lambda l: order.get(id(l), len(order) + leaves.index(l)))

    def _param_layer_objects(self):
        return {l.name: l for l in self._param_leaves()}

    @staticmethod
    def _options_of(layer):
        return dict(layer.get_config())

    def param_layers(self):
        return [ParamLayer(l.name, _kind(l), type(l).__name__,
                           sum(int(np.prod(w.shape)) for w in l.trainable_weights),
                           sum(int(np.prod(w.shape)) for w in l.non_trainable_weights),
                           {_short(w): tuple(w.shape) for w in l.weights},
                           sum(int(np.prod(w.shape)) for w in l.weights
                               if _short(w) in layer_maps.STATE.get(_kind(l), ())))
                for l in self._param_leaves()]

    def trace(self, x, keep_values=False, training=False):
        records = []

        def record(layer, inp, out):
            kind = _kind(layer)
            if kind in _RECURRENT:  # its last step, as torch's is compared
                out = out[0] if isinstance(out, (list, tuple)) else out
                out = out[:, -1] if len(out.shape) == 3 else out
                inp = None if is_recurrent_cell(type(layer).__name__) else inp
            a, b = _np(inp), _np(out)
            rec = LayerRecord(layer.name, kind, type(layer).__name__,
                              None if a is None else a.shape, None if b is None else b.shape)
            if keep_values:
                rec.in_value, rec.out_value = a, b
            records.append(rec)

        output, error = None, None
        with _recording(self._leaves(), record):
            try:
                output = self.forward(x, training=training)
            except CandidateError as exc:
                error = str(exc)
        return Trace(records, output, error)

    # -- shared training-time randomness (impls/randomness.py) ---------------------------------
    @staticmethod
    def _fed_dropout(stream, current, draws):
        """A stand-in for keras's backend ``random.dropout`` whose mask comes from ``stream``;
        each draw is appended to ``draws`` (a ``_Draw``) so that later steps can replay it."""
        def dropout(inputs, rate, noise_shape=None, seed=None):
            noise, shape = _noise_shape(inputs, noise_shape)
            draw = _Draw("dropout", float(rate), noise, shape, current[0], stream.after, 0.0, inputs.dtype.name)
            draws.append(draw)
            return inputs * tf.constant(draw.value(stream), dtype=inputs.dtype)
        return dropout

    @staticmethod
    def _fed_normal(stream, current, draws):
        """A stand-in for keras's backend ``random.normal`` (GaussianNoise, GaussianDropout) fed by ``stream``."""
        def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
            shape = tuple(int(d) for d in shape)
            kind = _normal_kind(mean)
            draw = _Draw(kind, float(stddev), shape, shape, current[0], stream.after,
                         0.0 if kind == "gaussian_dropout" else float(mean), tf.as_dtype(dtype or "float32").name)
            draws.append(draw)
            return tf.constant(draw.value(stream), dtype=draw.dtype)
        return normal

    @staticmethod
    def _recorded_draw(stream, current, name, fn):
        """``fn``, a random function that cannot be shared, recorded as unrecognised when called."""
        def draw(*args, **kwargs):
            stream.unrecognised.append(f"{current[0]} (keras.random.{name})")
            return fn(*args, **kwargs)
        return draw

    def _tracking_call(self, stream, current, original_call):
        """``Layer.__call__`` that names the running layer in ``current`` and advances ``stream.after``."""
        refs = self.param_refs()

        def __call__(layer, *args, **kwargs):
            outer, current[0] = current[0], f"{layer.name} ({type(layer).__name__})"
            try:
                out = original_call(layer, *args, **kwargs)
            finally:
                current[0] = outer
            if layer.name in refs:
                stream.after = refs[layer.name]
            return out
        return __call__

    @contextlib.contextmanager
    def _shared_randomness(self, stream, draws=None):
        """Training mode with noise from ``stream``: keras's backend ``random.dropout`` (what Dropout,
        SpatialDropout1D/2D/3D and keras.random.dropout call) and ``random.normal`` (GaussianNoise,
        GaussianDropout) are fed the stream; any other random function is recorded as unrecognised.
        Runs eagerly: a compiled function would bake one mask in as a constant (``_FedStep``
        compiles repeated training steps with the masks as inputs instead). ``draws``, when given,
        receives each draw made."""
        if stream is None:
            yield
            return
        draws = [] if draws is None else draws
        current = ["the model"]  # the layer now running, named in what the stream records
        original_call = keras.layers.Layer.__call__
        tracking_call = self._tracking_call(stream, current, original_call)
        with _backend_random(self._fed_dropout(stream, current, draws), self._fed_normal(stream, current, draws),
                             lambda name, fn: self._recorded_draw(stream, current, name, fn)):
            keras.layers.Layer.__call__ = tracking_call
            try:
                yield
            finally:
                keras.layers.Layer.__call__ = original_call

    # -- weights -------------------------------------------------------------------------------
    def _canonical_items(self):
        by_name = {l.name: l for l in self._param_leaves()}
        for layer, ref in self.param_layer_map():
            weights = by_name[layer.name].weights
            if layer.kind in _RECURRENT:  # a form without a torch twin (reset_after=False) is named
                try:
                    layer_maps.keras_to_canonical(layer.kind, {_short(v): np.zeros(v.shape, np.float32) for v in weights})
                except layer_maps.LayerMapError as exc:
                    raise CandidateError(f"layer {layer.name}, mapped onto the reference layer {ref}: {exc}") from exc
            for var in weights:
                suffix = _CANON.get(layer.kind, {}).get(_short(var))
                if suffix is None:
                    raise CandidateError(f"weight {layer.name}/{_short(var)} {tuple(var.shape)} has no "
                                         f"counterpart in the reference layer {ref}")
                yield f"{ref}.{suffix}", var, f"{layer.name}/{_short(var)}"

    def get_weights(self):
        out = {}
        for cname, var, kname in self._canonical_items():
            value = np.array(var.numpy())
            check_canonical_shape(cname, kname, value.shape, self.network)
            out[cname] = value
        self._check_names(out)
        return out

    def set_weights(self, weights):
        items = list(self._canonical_items())
        self._check_names([c for c, _, _ in items])
        for cname, var, kname in items:
            if cname not in weights:
                raise CandidateError(f"no value given for {cname} (keras weight {kname})")
            value = np.asarray(weights[cname])
            check_canonical_shape(cname, kname, value.shape, self.network, given=True)
            if tuple(value.shape) != tuple(var.shape):
                raise CandidateError(f"{cname}: shape {value.shape} does not fit keras weight "
                                     f"{kname} {tuple(var.shape)}")
            var.assign(value.astype(var.dtype))

    # -- recipe --------------------------------------------------------------------------------
    def _need_recipe(self):
        if not self.has_recipe:
            raise NoRecipe(f"{self.name} is not compiled: it carries no optimizer or loss")

    def _loss(self, x, y, y_pred):
        return self.model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)

    def loss_value(self, outputs, y):
        self._need_recipe()
        return float(self._loss(None, self._target(y), tf.constant(np.asarray(outputs, np.float32))))

    def _grad_fn(self):
        """Loss and gradients as one compiled tf.function (eager GradientTape costs ~5x per step)."""
        if getattr(self, "_compiled_grads", None) is None:
            model, trainable = self.model, self.model.trainable_variables

            @tf.function(reduce_retracing=True)
            def loss_and_grads(x, y):
                return _tape_loss_and_grads(model, trainable, x, y, training=False)

            self._compiled_grads = (loss_and_grads, trainable)
        return self._compiled_grads

    def loss_and_grads(self, x, y, training=False, stream=None):
        self._need_recipe()
        names = {id(v): c for c, v, _ in self._canonical_items()}
        if training:
            return self._training_loss_and_grads(x, y, stream, names)
        fn, trainable = self._grad_fn()
        try:
            loss, grads = fn(tf.constant(self._input(x)), tf.constant(self._target(y)))
        except Exception as exc:
            raise CandidateError(f"loss/gradient computation raised {type(exc).__name__}: {exc}") from exc
        result = {names[id(v)]: g.numpy() for v, g in zip(trainable, grads) if id(v) in names}
        return float(loss), result

    def _training_loss_and_grads(self, x, y, stream, names):
        """Training mode (dropout on). With shared masks: eagerly, until the same draws have been
        seen FED_AFTER times in a row for this batch shape; from then on one compiled step with the
        masks as its inputs (``_FedStep``), which draws the same masks from ``stream`` and records
        the same ops in it, every RECHECK_EVERY-th step run eagerly again to see that the draws
        still are the same (``_FedState``)."""
        trainable = self.model.trainable_variables
        xt, yt = tf.constant(self._input(x)), tf.constant(self._target(y))
        state = self.__dict__.setdefault("_fed", {}).setdefault((tuple(xt.shape), tuple(yt.shape)), _FedState())
        fed = state.compiled(xt, yt) if stream is not None else None
        try:
            if fed is not None:
                loss, grads = fed(xt, yt, stream)
            else:
                draws: list = []
                with self._shared_randomness(stream, draws):
                    loss, grads = _tape_loss_and_grads(self.model, trainable, xt, yt, training=True)
                if stream is not None and not stream.unrecognised:
                    state.saw(draws, self.model)
        except Exception as exc:
            raise CandidateError(f"loss/gradient computation raised {type(exc).__name__}: {exc}") from exc
        return float(loss), {names[id(v)]: g.numpy() for v, g in zip(trainable, grads) if id(v) in names}

    def _apply_fn(self):
        """The recipe optimizer's apply_gradients as one compiled tf.function (eager: ~70 ms/step)."""
        if getattr(self, "_compiled_apply", None) is None:
            items = [(c, var) for c, var, _ in self._canonical_items() if var.trainable]  # not running statistics
            optimizer = self.model.optimizer
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)

            @tf.function
            def apply(grads):
                optimizer.apply_gradients(zip(grads, [var for _, var in items]))

            self._compiled_apply = (apply, [c for c, _ in items])
        return self._compiled_apply

    def optimizer_step(self, grads):
        self._need_recipe()
        apply, names = self._apply_fn()
        try:
            apply([tf.constant(np.asarray(grads[c], np.float32)) for c in names])
        except Exception as exc:
            raise CandidateError(f"the optimizer step raised {type(exc).__name__}: {exc}") from exc

    def learning_rates(self, steps_per_epoch, epochs):
        self._need_recipe()
        lr = self.model.optimizer._learning_rate
        total = steps_per_epoch * epochs
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            steps = tf.range(total, dtype=tf.int64)
            values = keras.ops.convert_to_numpy(lr(steps))
            if np.shape(values) != (total,):
                values = np.array([float(lr(i)) for i in range(total)])
            return np.asarray(values, dtype=np.float64)
        return np.full(total, float(keras.ops.convert_to_numpy(lr)), dtype=np.float64)

    def fit_epoch(self, x, y, epoch, batch_size, seed):
        self._need_recipe()
        if getattr(self, "_fit_cache", (None,))[0] is not x:  # tensors built once per dataset
            with self._scope():
                self._fit_cache = (x, tf.constant(self._input(x)), tf.constant(self._target(y)))
        _, xs, ys = self._fit_cache
        order = tf.constant(batch_order(len(x), epoch, seed))
        ds = (tf.data.Dataset.from_tensor_slices((tf.gather(xs, order), tf.gather(ys, order)))
              .batch(batch_size).prefetch(tf.data.AUTOTUNE))
        with self._scope():
            history = self.model.fit(ds, epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][-1])

    def fit_steps(self, x, y, batch_size, steps, seed, dropout_seed, after_step=None, dense_gradients=False):
        """The model's own ``fit`` on the first ``steps`` batches of ``batch_order``, run eagerly
        (``run_eagerly`` is an execution choice: the same train_step, optimizer and callbacks) so
        that each step's dropout draws come from its stream, ``randomness.step_seed(dropout_seed,
        i)``, as in ``train_steps``. The step count follows ``train_step`` calls, so
        ``steps_per_execution`` is no difference."""
        self._need_recipe()
        order = batch_order(len(x), 0, seed)[:steps * batch_size]
        xs, ys = self._input(x[order]), self._target(y[order])
        model = self.model
        stream = randomness.Stream(randomness.step_seed(dropout_seed, 0))
        original, taken = model.train_step, [0]

        def train_step(data):
            stream.rng = np.random.RandomState(randomness.step_seed(dropout_seed, taken[0]))
            stream.after = "input"
            out = original(data)
            if after_step is not None:
                after_step(taken[0])
            taken[0] += 1
            return out

        had_own = "train_step" in vars(model)
        eager, model.train_function = model.run_eagerly, None
        object.__setattr__(model, "train_step", train_step)
        model.run_eagerly = True
        optimizer = model.optimizer
        if dense_gradients:
            apply = optimizer.apply

            def dense_apply(grads, trainable_variables=None):
                return apply([tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads],
                             trainable_variables)
            object.__setattr__(optimizer, "apply", dense_apply)
        try:
            with self._shared_randomness(stream):
                model.fit(xs, ys, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        except Exception as exc:
            raise CandidateError(f"fit raised {type(exc).__name__}: {exc}") from exc
        finally:
            if had_own:
                object.__setattr__(model, "train_step", original)
            else:
                object.__delattr__(model, "train_step")
            model.run_eagerly, model.train_function = eager, None
            if dense_gradients:
                object.__delattr__(optimizer, "apply")
        if stream.unrecognised:
            raise CandidateError(f"unrecognised random op in fit: {', '.join(stream.unrecognised)}")
        return taken[0]

    def diagram(self, path):
        """keras.utils.plot_model; needs pydot (pinned) and Graphviz's `dot` (apt-get install graphviz)."""
        import shutil

        if shutil.which("dot") is None:
            return ("plot_model skipped for " + self.name + ": Graphviz's `dot` is not installed "
                    "(apt-get install graphviz, or brew install graphviz), see the README")
        tmp = str(path) + ".partial.png"
        keras.utils.plot_model(self.model, to_file=tmp, show_shapes=True, show_layer_names=True, dpi=70)
        import os

        os.replace(tmp, path)
        return f"plot_model diagram of {self.name} written to {path}"

    def _scope(self):
        return tf.device("/GPU:0" if self.device == "gpu" else "/CPU:0")

    def place(self, device):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"Keras twins run on 'cpu' or 'gpu', not {device!r}")
        if device == "gpu" and not tf.config.list_physical_devices("GPU"):
            raise ValueError("no GPU is visible to TensorFlow")
        self.device = device
        self.__dict__.pop("_fit_cache", None)

    def inference_fn(self, x):
        with self._scope():
            xt = tf.constant(self._input(x))

        def run():
            with self._scope():
                return self.model.predict_on_batch(xt)  # numpy: the result is materialised

        return run

    def use_variant(self, variant):
        from twinbench.impls.speed import variants

        variants.use_keras_variant(self, variant)  # impls/speed/variants.py

    def summary(self):
        lines = []
        self.model.summary(print_fn=lambda line, **kw: lines.append(line), line_length=100)
        return "\n".join(lines)

    def save(self, path, whole_model=True):
        if not whole_model:
            path = str(path) + ".weights.h5"
            self.model.save_weights(path)
            return path
        path = str(path) + ".keras"
        self.model.save(path)
        return path

    def load(self, path):
        if str(path).endswith(".weights.h5"):
            self.model.load_weights(path)
            return
        self.model = keras.models.load_model(path, safe_mode=True)
        self.__dict__.pop("_order", None)
        self.__dict__.pop("_fed", None)  # compiled for the model replaced
        self._compiled_grads = self._compiled_apply = None

    def whole_model_note(self, path, x):
        try:
            saved = self.save(path)
            reloaded = keras.models.load_model(saved, safe_mode=True, compile=False)  # the model, not its optimizer
            same = np.array_equal(_np(reloaded(self._input(x), training=False)), self.forward(x))
        except Exception as exc:
            return (f"whole-model serialization (.keras) does not round-trip ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}); weights do. Fix: decorate the model class with "
                    "@keras.saving.register_keras_serializable() and give it get_config()")
        return "" if same else "whole-model serialization (.keras) reloads a model whose outputs differ; weights round-trip"
