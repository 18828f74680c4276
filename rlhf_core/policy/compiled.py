"""The DQN's compiled update: a training round's gradient steps as ``torch.compile`` graphs.

:class:`CompiledUpdates` is the one door: an agent built with ``DQNConfig(compile=True)``
calls it with a round's stacked minibatches; it returns their losses, or None when the graph
cannot compile here or a checked call (a graph's calls until 8 of its steps were) computes
other numbers than the same steps uncompiled (the agent then falls back to its plain update
for good). It computes
what :meth:`rlhf_core.policy.dqn.DQNAgent.update` computes, with the same TD target and loss
(:mod:`rlhf_core.policy.qnetwork`) and the agent's own optimizer state and hyperparameters;
a test holds the two paths together. Why it is faster and by how much: docs/benchmarks.md.

Graphs are compiled ahead of time and saved (:class:`SavedGraphs`), so a later process loads
a graph instead of tracing it again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_core.policy import qnetwork
from rlhf_core.policy.qnetwork import QNetwork, ReplayBatch, mlp_forward, td_loss_and_grads, td_target

logger = logging.getLogger(__name__)

#: Most gradient steps one compiled call makes (unrolled in its graph): each call costs guard
#: checks and wrapper work, and the target network's values of all its minibatches come from
#: one matrix product; more steps compile longer.
STEPS_PER_CALL = 8

#: Most graphs of :func:`fused_updates` one process keeps. Dynamo counts the graphs of a
#: function across every agent of a process (one per network shape, steps per call and DQN
#: variant), and past its default of 8 it refuses to compile another: the next agent of a long
#: process (a test run, a worker that trains for many projects) would fall back to ordinary
#: updates, or fail where a graph it already ran must compile again (under other global
#: state, which dynamo guards). Raised for this function's compiles only.
GRAPHS_PER_PROCESS = 64

#: Inductor's options for the graph. vec_isa_ok: trust the CPU's reported vector instructions
#: instead of probing them with test builds in subprocesses (1 s per process); a build that
#: fails falls back. cpp.threads 1: the graph's own loops (Adam, the loss) are too small to share
#: (two OpenMP threads measured no faster), and the graph, cached on disk, is then the same
#: whatever the updates' thread count; the matrix products still use those threads.
OPTIONS: dict[str, Any] = {"cpp.vec_isa_ok": True, "cpp.threads": 1}


def fused_updates(
    params: list[torch.Tensor],
    target_params: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: torch.Tensor,
    batches: ReplayBatch,
    scalars: torch.Tensor,
    *,
    double_q: bool,
    eps: float,
    hidden_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Consecutive gradient steps on stacked minibatches (K, B, ...), written for ``torch.compile``:
    per step the TD target and loss, their gradient (the backward pass written out,
    :func:`~rlhf_core.policy.qnetwork.td_loss_and_grads`), ``clip_grad_norm_``'s clipping and
    Adam, updating ``params``, the Adam moments and the step counts in place.
    Returns the K losses. The target network is fixed throughout, as within a round.

    Adam is written out because ``torch.optim``'s functional Adam computes its bias corrections
    from the step tensor inside the graph, and inductor then recomputes those two powers for
    every vector of every parameter. Here they arrive computed (in float64, then rounded, as
    ``torch.optim``'s fused Adam does), in ``scalars``: gamma, max_grad_norm, ``1 - beta1``,
    beta2, ``1 - beta2``, the absorbing value, then per step Adam's step size ``lr / (1 -
    beta1**t)``, then per step ``sqrt(1 - beta2**t)``. One tensor holds them all (each input
    costs a guard check per call), and their values are not baked into the graph, so agents
    that differ only in them share it. ``hidden_dtype``: see :func:`~rlhf_core.policy.qnetwork.mlp_forward`.
    """
    k = batches.features.shape[0]
    gamma, max_grad_norm, one_minus_beta1, beta2, one_minus_beta2, absorbing_value = scalars[:6].unbind()
    step_sizes, bias_corrections2_sqrt = scalars[6:].view(2, k).unbind()
    with torch.no_grad():
        next_features = batches.next_features.flatten(0, 1)
        next_q_targets = mlp_forward(target_params, next_features, hidden_dtype).unflatten(0, (k, -1))
    losses = []
    for i in range(k):
        with torch.no_grad():
            online_next = mlp_forward(params, batches.next_features[i], hidden_dtype) if double_q else None
            target = td_target(
                batches.rewards[i], batches.terminated[i], next_q_targets[i], gamma, absorbing_value, online_next
            )
        grads, loss = td_loss_and_grads(params, batches.features[i], batches.actions[i], target, hidden_dtype)
        # clip_grad_norm_'s arithmetic, on gradients that are not stored in .grad (its
        # get_total_norm calls _foreach_norm, which inductor runs outside the graph)
        total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        clip = torch.clamp(max_grad_norm / (total_norm + 1e-6), max=1.0)
        with torch.no_grad():
            for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
                g = g * clip
                m.lerp_(g, one_minus_beta1)
                v.mul_(beta2).add_(g * g * one_minus_beta2)
                p.sub_(step_sizes[i] * m / (v.sqrt() / bias_corrections2_sqrt[i] + eps))
        losses.append(loss)
    steps.add_(k)
    return torch.stack(losses)


@dataclass
class _Inputs:
    """What the graph receives besides the minibatches, made once per agent."""

    params: list[torch.Tensor]
    """The online network's weights (same storage: updates land in the network)."""
    target_params: list[torch.Tensor]
    """The target network's weights (same storage: target copies reach the graph)."""
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: torch.Tensor
    """Adam's step count per parameter; the optimizer state's ``step`` entries are its elements."""

    def copy(self) -> _Inputs:
        """Copies of what a call changes (the target network's weights are shared: no call changes them)."""
        return _Inputs(
            [p.clone() for p in self.params],
            self.target_params,
            [m.clone() for m in self.exp_avgs],
            [v.clone() for v in self.exp_avg_sqs],
            self.steps.clone(),
        )

    def restore(self, saved: _Inputs) -> None:
        """Put back, in place (the network and the optimizer hold these tensors), what ``saved`` copied."""
        with torch.no_grad():
            for mine, theirs in zip(
                [*self.params, *self.exp_avgs, *self.exp_avg_sqs, self.steps],
                [*saved.params, *saved.exp_avgs, *saved.exp_avg_sqs, saved.steps],
                strict=True,
            ):
                mine.copy_(theirs)


def _close(got: torch.Tensor, want: torch.Tensor, *, rel: float, floor: float = 0.0) -> bool:
    """Non-finite in the same places, and the rest within ``rel`` of ``want``'s norm (relative to
    the whole) plus ``floor``."""
    ok_got, ok_want = torch.isfinite(got), torch.isfinite(want)
    if not torch.equal(ok_got, ok_want):
        return False
    diff = torch.linalg.vector_norm((got[ok_got] - want[ok_want]).double())
    return bool(diff <= rel * torch.linalg.vector_norm(want[ok_want].double()) + floor + 1e-12)


def _graph_signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What a saved graph is for (what its guards check, and more): grad mode, autocast,
    deterministic mode and the default dtype (of the global state its guards leave out), the
    keyword values, and each tensor's shape, dtype, strides and ``requires_grad``. Not the
    thread count: see :func:`_saved_guards`."""
    parts: list[Any] = [
        torch.is_grad_enabled(),
        torch.is_autocast_enabled("cpu"),
        torch.are_deterministic_algorithms_enabled(),
        torch.get_default_dtype(),
        tuple(sorted(kwargs.items())),
    ]
    for arg in args:
        for t in arg if isinstance(arg, (list, tuple)) else (arg,):
            parts.append((tuple(t.shape), t.dtype, t.stride(), t.requires_grad))
    return tuple(parts)


@functools.cache
def _build_identity() -> str:
    """What a saved graph is valid for besides its signature: this code (the files of the traced
    functions), torch, Python (its bytecode), the options, and the CPU (inductor builds for the
    host's vector instructions: a graph saved on another CPU might not run here)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = sorted({ln for ln in lines if ln.startswith(("flags", "Features"))})  # x86, ARM
    except OSError:
        cpu = [platform.processor()]
    code = [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in (sys.modules[__name__], qnetwork)]
    versions = [torch.__version__, sys.version, platform.machine(), torch.backends.cpu.get_cpu_capability()]
    return "\n".join([*code, *versions, repr(sorted(OPTIONS.items())), *cpu])


def _saved_guards(entries: list[Any]) -> list[bool]:
    """Which of dynamo's guards a saved graph keeps: those ``aot_compile`` keeps by default (no
    global ones, none it cannot serialize), less ``GLOBAL_STATE``, whose part that matters here is
    torch's thread count. The graph's code is the same on any count (its loops run on one
    thread, ``cpp.threads``; its matrix products on torch's count when it runs), so one saved
    graph serves both counts the updates choose between (:mod:`rlhf_core.threads`), where the
    ordinary compile traces and builds a graph per count; the rest of that state that could
    matter (grad mode, autocast, deterministic mode, the default dtype) is in
    :func:`_graph_signature`. Each count's first calls are still checked against
    uncompiled steps (:class:`CompiledUpdates`)."""
    from torch._dynamo.guards import CheckFunctionManager

    unsupported = CheckFunctionManager.UNSUPPORTED_SERIALIZATION_GUARD_TYPES
    return [not (g.is_global or g.guard_type in unsupported or g.guard_type == "GLOBAL_STATE") for g in entries]


def saved_graphs_folder() -> Path:
    """Where compiled graphs are saved between processes: beside torch's own compile cache
    (``TORCHINDUCTOR_CACHE_DIR``, by default ``/tmp/torchinductor_<user>``), so deleting that deletes them."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / "rlhf-dqn-graphs"


class SavedGraphs:
    """:func:`fused_updates` compiled ahead of time and saved, so that later processes load it.

    ``torch.compile``'s own disk cache keeps the generated code, but every process still traces
    the function again (dynamo, 1.5-3 s for 8 unrolled steps) and probes the cache: an agent's
    first round took 2.8-3.8 s here. A graph compiled with ``aot_compile`` and saved (its guards,
    bytecode and code) is loaded instead: 1.2-1.8 s, and then it runs as fast (docs/benchmarks.md).
    One file per graph signature (:func:`_graph_signature`) and build (:func:`_build_identity`),
    in :func:`saved_graphs_folder`, for every thread count (:func:`_saved_guards`), written once a
    checked call of it agreed with uncompiled steps (:meth:`confirm`); loaded graphs are kept for
    the process, shared by its agents. The signature is computed on every
    call (24 us; 75 ms of a 20 s CartPole run's 3,072 calls).

    Where compiling ahead of time fails, the graph is compiled as before (``torch.compile``, which
    reports its own failures); where saving fails, this process keeps its graph; a file that does
    not load is deleted and compiled again; a loaded graph whose guards refuse a call leaves that
    call's signature to the ordinary compile; and :meth:`discard` deletes a graph whose numbers
    :class:`CompiledUpdates` found wrong, whose signature then goes to the ordinary compile for the
    rest of the process. The cache folder's problems (unreadable, read-only) never stop training."""

    _loaded: dict[tuple[Any, ...], Callable[..., torch.Tensor]] = {}
    """Signature -> the graph's function, for the whole process."""
    _discarded: set[tuple[Any, ...]] = set()
    """Signatures whose saved graph computed other numbers (:meth:`discard`), for the whole process."""
    _unsaved: dict[tuple[Any, ...], Any] = {}
    """Signature -> a graph compiled ahead of time in this process that no checked call has confirmed
    yet (:meth:`confirm`), for the whole process."""

    def __init__(self) -> None:
        self.jit: Callable[..., torch.Tensor] = torch.compile(
            fused_updates, fullgraph=True, dynamic=False, options=OPTIONS, recompile_limit=GRAPHS_PER_PROCESS
        )
        """The ordinary compile, where a graph cannot be compiled ahead of time."""
        self.ahead: Any = torch.compile(
            fused_updates, fullgraph=True, dynamic=False, options={**OPTIONS, "guard_filter_fn": _saved_guards}
        )
        """What compiles ahead of time (its ``aot_compile``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        signature = _graph_signature(args, kwargs)
        fn = self._loaded.get(signature)
        if fn is None:
            fn = self._loaded[signature] = self._load_or_compile(signature, args, kwargs)
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:  # guards refuse before the graph runs: nothing changed yet
            if fn is self.jit or not str(exc).startswith("GuardManager check failed"):
                raise
            logger.info("a saved DQN graph does not fit this call (%s); compiling it the ordinary way", exc)
            self._loaded[signature] = self.jit
            self._unsaved.pop(signature, None)
            return self.jit(*args, **kwargs)

    def path(self, signature: tuple[Any, ...]) -> Path:
        digest = hashlib.sha256(f"{_build_identity()}\n{signature!r}".encode()).hexdigest()[:40]
        return saved_graphs_folder() / f"{digest}.bin"

    def discard(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Forget the graph of such a call, and delete its file."""
        signature = _graph_signature(args, kwargs)
        self._loaded.pop(signature, None)
        self._unsaved.pop(signature, None)
        self._discarded.add(signature)
        try:
            self.path(signature).unlink(missing_ok=True)
        except (OSError, TypeError) as exc:
            logger.info("a wrong saved DQN graph could not be deleted (%s)", exc)

    def _load_or_compile(
        self, signature: tuple[Any, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Callable[..., torch.Tensor]:
        import torch._inductor.config

        if signature in self._discarded:
            return self.jit
        try:
            path = self.path(signature)
            saved = path.is_file()
        except (OSError, TypeError) as exc:  # this code's files or the cache folder cannot be read
            logger.info("compiled DQN graphs are not saved here (%s)", exc)
            return self.jit
        if saved:
            try:
                # the options apply to loading too: without vec_isa_ok the loaded code probes the CPU
                with torch._inductor.config.patch(OPTIONS), path.open("rb") as f:
                    return torch.compiler.load_compiled_function(f)
            except Exception as exc:  # noqa: BLE001  (a file of another build, cut short, or unreadable)
                logger.info("a saved DQN graph did not load (%s: %s); compiling it again", type(exc).__name__, exc)
                # another user's file cannot be deleted: saving over it fails too, and this process keeps its graph
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        try:
            fn = self.ahead.aot_compile((args, kwargs))
        except Exception as exc:  # noqa: BLE001  (then the ordinary compile, which reports its own failures)
            logger.info("compiling the DQN graph ahead of time failed (%s: %s)", type(exc).__name__, str(exc)[:200])
            return self.jit
        self._unsaved[signature] = fn
        return fn

    def confirm(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Save the graph of such a call, compiled in this process, now that a call of it agreed with
        uncompiled steps (:class:`CompiledUpdates`): a graph is written only once it was found
        right, so no other process loads one that this process would have discarded."""
        signature = _graph_signature(args, kwargs)
        fn = self._unsaved.pop(signature, None)
        if fn is None:  # loaded from a file, saved already, or compiled the ordinary way
            return
        try:
            path = self.path(signature)
            path.parent.mkdir(parents=True, exist_ok=True)
            fn.save_compiled_function(str(path))  # written to a temporary file, then renamed
        except Exception as exc:  # noqa: BLE001  (a read-only cache: this process still has the graph)
            logger.info("the compiled DQN graph could not be saved (%s: %s)", type(exc).__name__, exc)


class CompiledUpdates:
    """The compiled gradient steps of one agent, on its networks and its optimizer's own state."""

    def __init__(
        self,
        q: QNetwork,
        target: QNetwork,
        optimizer: torch.optim.Adam,
        *,
        gamma: float,
        max_grad_norm: float,
        double_q: bool,
    ) -> None:
        self.q, self.target, self.optimizer = q, target, optimizer
        self.gamma, self.max_grad_norm, self.double_q = gamma, max_grad_norm, double_q
        self.fn: Callable[..., torch.Tensor] = SavedGraphs()
        self.graphs: set[tuple[int, int]] = set()
        """(steps per call, threads) of the graphs that compiled and ran: the ordinary compile guards on the
        thread count, so each count the updates run on has its own graph."""
        self.checked: dict[tuple[int, int], int] = {}
        """A graph's (steps per call, threads) -> how many of its steps :meth:`_check` has held
        to uncompiled ones."""
        self._inputs: _Inputs | None = None

    @property
    def sizes(self) -> set[int]:
        """Steps per call that compiled and ran (on any thread count)."""
        return {k for k, _ in self.graphs}

    def __call__(self, batches: ReplayBatch, absorbing_value: float) -> torch.Tensor | None:
        """The steps of stacked minibatches (G, B, ...), in calls of the largest divisor of G up to
        :data:`STEPS_PER_CALL`; their losses (G,), or None if the graph cannot compile here or a
        checked call disagrees with :meth:`_check` (before any step of this call, or undone: the
        caller then runs them its plain way). A graph's calls are checked, the first of each call
        here, until :data:`STEPS_PER_CALL` of its steps were (a one-step graph: its first 8 calls).
        A failure after a graph has run is raised."""
        if self._inputs is None:
            self._inputs = self._make_inputs()
        st = self._inputs
        n = len(batches.features)
        if n == 0:
            return torch.zeros(0)
        k = max(d for d in range(1, min(n, STEPS_PER_CALL) + 1) if n % d == 0)
        graph = (k, torch.get_num_threads())
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        fixed = [self.gamma, self.max_grad_norm, 1 - beta1, beta2, 1 - beta2, absorbing_value]
        losses = []
        for start in range(0, n, k):
            t = float(st.steps[0]) + 1 + np.arange(k, dtype=np.float64)  # Adam's step numbers
            scalars = np.concatenate([fixed, group["lr"] / (1 - beta1**t), np.sqrt(1 - beta2**t)])
            args = (
                ReplayBatch(*(x[start : start + k] for x in batches)),
                torch.from_numpy(scalars.astype(np.float32)),
            )
            kwargs = {"double_q": self.double_q, "eps": group["eps"], "hidden_dtype": self.q.hidden_dtype}
            # checked only as the first call here: a disagreement then leaves no step of this round taken
            check = start == 0 and self.checked.get(graph, 0) < STEPS_PER_CALL
            before = st.copy() if check else None
            inputs = (st.params, st.target_params, st.exp_avgs, st.exp_avg_sqs, st.steps, *args)
            try:
                out = self.fn(*inputs, **kwargs)
            except Exception as exc:  # noqa: BLE001  (compiling can fail in many ways; it fails before any step)
                if before is not None:
                    st.restore(before)  # a graph that fails part-way leaves no step of it behind
                if graph in self.graphs:
                    raise
                logger.warning(
                    "compiled DQN updates are unavailable here (%s: %s); training continues with ordinary updates",
                    type(exc).__name__,
                    str(exc)[:200],
                )
                return None
            if before is not None:
                try:
                    problem = self._check(before, out, args, kwargs, lr=group["lr"], k=k)
                except BaseException:
                    st.restore(before)
                    raise
                if problem is not None:
                    st.restore(before)  # as if the call had not run: the ordinary updates take these steps
                    if isinstance(self.fn, SavedGraphs):
                        self.fn.discard(inputs, kwargs)
                    logger.warning(
                        "compiled DQN updates compute other numbers than ordinary ones here (they differ in %s); "
                        "training continues with ordinary updates. One known cause is a torch compile cache that "
                        "holds code generated for other vector instructions: delete it (TORCHINDUCTOR_CACHE_DIR, "
                        "by default /tmp/torchinductor_<user>) to compile afresh",
                        problem,
                    )
                    return None
                self.checked[graph] = self.checked.get(graph, 0) + k
                if isinstance(self.fn, SavedGraphs):
                    self.fn.confirm(inputs, kwargs)
            self.graphs.add(graph)
            losses.append(out)
        return torch.cat(losses)

    def _check(
        self, before: _Inputs, out: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any], *, lr: float, k: int
    ) -> str | None:
        """A graph's call, held to the same steps run uncompiled from the same state: None where
        they agree (the losses, and per weight tensor its update and Adam's moments), else what
        differs. Compiled code can be wrong without failing: inductor's on-disk cache (torch 2.13)
        keys a graph without the vector instructions its C++ was generated for (code for AVX-512
        steps through 16 floats at a time), and builds a cached graph's C++ with the flags of the
        process that finds it; under AVX2 (8 floats a vector) its losses came out NaN
        (ATEN_CPU_CAPABILITY=avx2 on an AVX-512 CPU, docs/benchmarks.md). The check costs one
        uncompiled call. Tolerances: on CartPole's preset network (vanilla and double DQN, 3 seeds),
        rounding moved the losses by at most 1e-6 of their norm and a weight tensor's update or
        moments by at most 5e-6 (8e-5 with the bfloat16 hidden layer). The bounds leave room for
        Adam's first step, which moves a weight by about ``lr`` whatever its gradient's size: a
        gradient of about zero can come out with either sign, and the k steps of the call then
        move that weight up to ``2 lr k`` apart (one such weight is allowed per tensor; the
        moments, proportional to the gradients, get a floor of 1e-3 of all tensors' norm)."""
        ref = before.copy()
        ref_losses = fused_updates(
            ref.params, ref.target_params, ref.exp_avgs, ref.exp_avg_sqs, ref.steps, *args, **kwargs
        )
        st = self._inputs
        assert st is not None
        if not _close(out, ref_losses, rel=1e-3):
            return f"losses {out[:3].tolist()} against {ref_losses[:3].tolist()}"
        for i, (p0, p, want) in enumerate(zip(before.params, st.params, ref.params, strict=True)):
            if not _close(p - p0, want - p0, rel=5e-2, floor=2 * lr * k):
                return f"the update of weight tensor {i} {tuple(p.shape)}"
        for name, got, want in (("first", st.exp_avgs, ref.exp_avgs), ("second", st.exp_avg_sqs, ref.exp_avg_sqs)):
            floor = 1e-3 * float(
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(w.double()) for w in want]))
            )
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                if not _close(g, w, rel=5e-2, floor=floor):
                    return f"Adam's {name} moments of weight tensor {i} {tuple(g.shape)}"
        if not torch.equal(st.steps, ref.steps):
            return "Adam's step counts"
        return None

    def _make_inputs(self) -> _Inputs:
        """The weights and the optimizer's own Adam state, created as Adam's first step would (the
        compiled path runs from an agent's first update, so there is no earlier state), with the
        step counts gathered into one tensor whose elements are the state's entries."""
        params = self.q.linear_params()
        steps = torch.zeros(len(params))
        for i, p in enumerate(params):
            self.optimizer.state[p].update(step=steps[i], exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        return _Inputs(
            [p.detach() for p in params],
            self.target.linear_params(),
            [self.optimizer.state[p]["exp_avg"] for p in params],
            [self.optimizer.state[p]["exp_avg_sq"] for p in params],
            steps,
        )
