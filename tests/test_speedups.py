"""aunet.speedups: one switch; a model built with it off runs the plain PyTorch code and computes the same."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from aunet import AttentionUNet, device, speedups
from aunet.config import Config
from aunet.errors import AunetError
from aunet.gate import GatedSkip
from aunet.step import TrainingStep

FAST_FUNCTIONS = {"_Conv3x3x3Backward", "_UpsampleBackward"}  # aunet's autograd Functions (fastconv, upsample)
SMALL = dict(filters=(4, 8, 16, 32, 64))
pytestmark = pytest.mark.usefixtures("speedups_on")  # tests/conftest.py: AUNET_FAST unset unless a test sets it


def graph_node_names(t: torch.Tensor) -> set[str]:
    """The class names of every node of t's autograd graph."""
    names, seen, stack = set(), set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    return names


def flags(model: torch.nn.Module) -> dict[str, set[bool]]:
    """The speed-up attributes copied onto the model's modules, and the values they hold."""
    out: dict[str, set[bool]] = {}
    for m in model.modules():
        for attr in ("fastconv", "fast_upsample", "fold_gates", "fused_head"):
            if hasattr(m, attr):
                out.setdefault(attr, set()).add(getattr(m, attr))
    return out


def calls(module: torch.nn.Module) -> list[int]:
    """A list that grows by one each time `module` is called as a module (a forward hook)."""
    seen: list[int] = []
    module.register_forward_hook(lambda *_: seen.append(1))
    return seen


def fast_and_plain() -> tuple[AttentionUNet, AttentionUNet]:
    """The same small Attention U-Net (random weights and BatchNorm statistics) built fast and plain."""
    torch.manual_seed(0)
    fast = AttentionUNet(**SMALL)
    with torch.no_grad():
        for p in fast.gates.parameters():
            p.add_(torch.randn_like(p))  # alpha no longer uniform
        for m in fast.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    with speedups.off():
        plain = AttentionUNet(**SMALL)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def on_this_cpu(name: str) -> bool:
    """What the default says for `name` here: on, or for the CPU-dependent ones whatever the CPU pays for."""
    return name not in speedups.ON_CAPABLE_CPUS or speedups.cpu_pays_for(name)


def test_enabled_off_and_nesting():
    assert speedups.status() == {name: on_this_cpu(name) for name in speedups.NAMES}
    with speedups.off("upsample"):
        with speedups.off("upsample", "fastconv"):
            assert not speedups.enabled("upsample") and not speedups.enabled("fastconv")
        assert not speedups.enabled("upsample") and speedups.enabled("fastconv")  # the outer block still holds
        assert speedups.enabled("fold_gates")
    with speedups.off():
        assert not any(speedups.status().values())
    assert speedups.status() == {name: on_this_cpu(name) for name in speedups.NAMES}
    with pytest.raises(ValueError, match="unknown speed-up 'flash'"):
        speedups.enabled("flash")


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("AUNET_FAST", "0")
    assert not any(speedups.status().values())
    assert not any(True in v for v in flags(AttentionUNet(**SMALL)).values())
    monkeypatch.setenv("AUNET_FAST", "1")
    assert speedups.status() == {name: on_this_cpu(name) for name in speedups.NAMES}
    monkeypatch.setenv("AUNET_FAST", "yes")
    with pytest.raises(AunetError, match="AUNET_FAST='yes'"):
        speedups.enabled("fastconv")


def test_fast_paths_need_float32_cpu_tensors():
    assert speedups.cpu_float32(torch.zeros(1))
    assert not speedups.cpu_float32(torch.zeros(1, dtype=torch.float64))
    assert not speedups.cpu_float32(torch.zeros(1, device="meta"))  # any other device, CUDA included
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not speedups.cpu_float32(torch.zeros(1))


def test_built_plain_runs_the_plain_paths_and_computes_the_same():
    fast, plain = fast_and_plain()
    assert flags(fast) == {k: {True} for k in ("fastconv", "fast_upsample", "fold_gates", "fused_head")}
    assert flags(plain) == {k: {False} for k in ("fastconv", "fast_upsample", "fold_gates", "fused_head")}
    final_calls = {m: calls(m.final) for m in (fast, plain)}
    merge_calls = {m: calls(m.gates["level2"].merge) for m in (fast, plain)}
    x = torch.randn(1, 1, 32, 32, 16)

    fast.eval(), plain.eval()
    (y_fast, att_fast), (y_plain, att_plain) = fast(x, return_attention=True), plain(x, return_attention=True)
    assert att_fast["level2"].std() > 0.01  # the gates really attend
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-4, atol=1e-5)
    for name in att_plain:
        torch.testing.assert_close(att_fast[name], att_plain[name], rtol=1e-4, atol=1e-5)
    assert (len(final_calls[fast]), len(final_calls[plain])) == (0, 1)  # the fused head does not call final
    assert (len(merge_calls[fast]), len(merge_calls[plain])) == (0, 1)  # eval: folded gates vs the layers

    fast.train(), plain.train()
    y_fast, y_plain = fast(x), plain(x)
    assert FAST_FUNCTIONS <= graph_node_names(y_fast)
    assert not FAST_FUNCTIONS & graph_node_names(y_plain)  # PyTorch's convolution and interpolation only
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-4, atol=1e-4)
    y_fast.square().mean().backward()
    y_plain.square().mean().backward()
    for (name, p_fast), p_plain in zip(fast.named_parameters(), plain.parameters()):
        if name.startswith(("decoder", "dsv", "final", "gates")) and name.endswith("weight"):  # see test_fastconv
            torch.testing.assert_close(p_fast.grad, p_plain.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_float64_model_takes_no_fast_path():
    torch.manual_seed(0)
    model = AttentionUNet(**SMALL).double()
    final_calls = calls(model.final)
    y = model(torch.randn(1, 1, 32, 32, 16, dtype=torch.float64))
    assert not FAST_FUNCTIONS & graph_node_names(y) and len(final_calls) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_takes_no_fast_path():
    torch.manual_seed(0)
    model = AttentionUNet(**SMALL).cuda()
    merge_calls, final_calls = calls(model.gates["level2"].merge), calls(model.final)
    y = model(torch.randn(1, 1, 32, 32, 16, device="cuda"))
    assert not FAST_FUNCTIONS & graph_node_names(y)
    model.eval()(torch.randn(1, 1, 32, 32, 16, device="cuda"))
    assert len(merge_calls) == 2 and len(final_calls) == 2


def test_gated_skip_built_plain_unfolds_in_eval():
    with speedups.off("fold_gates"):
        skip = GatedSkip(4, 6, dim=3).eval()
    merge_calls = calls(skip.merge)
    skip(torch.randn(1, 4, 8, 8, 8), torch.randn(1, 6, 4, 4, 4))
    assert not skip.fold_gates and len(merge_calls) == 1


def test_reuse_cpu_memory_follows_the_switch():
    with speedups.off("reuse_cpu_memory"):
        with device.reuse_cpu_memory() as in_effect:
            assert in_effect is False and device._reuse_depth == 0


def test_aunet_fast_0_in_a_fresh_process():
    """AUNET_FAST=0 as a user sets it: every speed-up off, in the model and in reuse_cpu_memory."""
    script = """
import json, torch
from aunet import AttentionUNet, device, speedups
model = AttentionUNet(filters=(4, 8, 16, 32, 64))
attrs = ("fastconv", "fast_upsample", "fold_gates", "fused_head")
flags = sorted({getattr(m, a) for m in model.modules() for a in attrs if hasattr(m, a)})
with device.reuse_cpu_memory() as reuse:
    pass
print(json.dumps(dict(status=speedups.status(), flags=flags, reuse=reuse)))
"""
    env = dict(os.environ, AUNET_FAST="0")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == dict(status={name: False for name in speedups.NAMES}, flags=[False], reuse=False)


# --- the training step's CPU-dependent speed-ups: bfloat16 forward, channels-last, fused Adam ------------------

@pytest.fixture
def isa_cap(monkeypatch):
    """Set ONEDNN_MAX_CPU_ISA for aunet.speedups' rules (their answers are cached per process: cleared around)."""
    def set_cap(value: str | None) -> None:
        for var in speedups.ISA_ENV_VARS:
            monkeypatch.delenv(var, raising=False)
        if value is not None:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", value)
        speedups.cpu_pays_for.cache_clear()
    yield set_cap
    set_cap(None)


def test_rules_follow_the_cpu_and_oneDNN_cap(isa_cap):
    amx = torch.cpu._is_amx_tile_supported() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    avx512 = torch.cpu._is_avx512_supported()
    for cap, bf16, channels_last in ((None, amx, avx512), ("AVX2", False, False), ("avx512_core", False, avx512),
                                     ("AVX512_CORE_BF16", False, avx512), ("AVX512_CORE_AMX", amx, avx512),
                                     ("SOMETHING_NEW", False, False)):  # an unknown cap counts as a low one
        isa_cap(cap)
        assert (speedups.cpu_pays_for("bf16"), speedups.cpu_pays_for("channels_last")) == (bf16, channels_last), cap
        assert speedups.describe()["onednn_max_cpu_isa"] == (cap.upper() if cap else None)
        assert speedups.enabled("bf16") == bf16
    with speedups.off("bf16"):
        assert not speedups.enabled("bf16")


TINY_STEP = dict(base_filters=4, patch_size=(32, 32, 16), batch_size=2, lr=2e-3, device="cpu")


def blob_batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n batches of noisy bright boxes (class 1 inside, 2 in their upper half, 3 in a corner), fixed seed."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        labels = torch.zeros(2, 32, 32, 16, dtype=torch.long)
        for b in range(2):
            x0, y0 = torch.randint(2, 14, (2,), generator=g).tolist()
            labels[b, x0:x0 + 14, y0:y0 + 14, 3:13] = 1
            labels[b, x0:x0 + 7, y0:y0 + 14, 3:13] = 2
            labels[b, :6, :6, :4] = 3
        images = labels.float().unsqueeze(1) + 0.5 * torch.randn(2, 1, 32, 32, 16, generator=g)
        out.append((images, labels))
    return out


def loss_curve(monkeypatch, bf16: bool, steps: int = 16) -> tuple[list[float], TrainingStep]:
    """The losses of `steps` optimiser steps of a tiny Attention U-Net, bfloat16 forced on or off."""
    monkeypatch.setattr(speedups, "cpu_pays_for", lambda name: True)  # the bfloat16 step on any CPU
    cfg = Config.from_profile("quick", **TINY_STEP)
    torch.manual_seed(0)
    with speedups.off() if not bf16 else speedups.off("fastconv"):  # float32: every CPU's plain reference
        step = TrainingStep(cfg, torch.device("cpu"))
    batches = blob_batches(4)
    return [step(*batches[i % len(batches)]) for i in range(steps)], step


def test_bfloat16_step_follows_the_float32_loss_curve(monkeypatch):
    """The bfloat16 channels-last step trains like the float32 one: the same curve within a few percent."""
    torch.set_num_threads(1)  # float rounding depends on the thread count: compare like with like
    plain, step32 = loss_curve(monkeypatch, bf16=False)
    fast, step16 = loss_curve(monkeypatch, bf16=True)
    assert (step32.bf16, step32.channels_last, step16.bf16, step16.channels_last) == (False, False, True, True)
    assert step16.describe()["forward_dtype"] == "bfloat16" and step32.describe()["forward_dtype"] == "float32"
    assert plain[-1] < 0.7 * plain[0] and fast[-1] < 0.7 * fast[0]  # both learn ...
    gaps = [abs(a - b) / b for a, b in zip(fast, plain)]
    assert max(gaps) < 0.05, gaps  # ... along the same curve (measured: under 1 %)
    assert fast != plain  # and the bfloat16 step did run in another precision


def test_bfloat16_step_keeps_the_loss_in_float32(monkeypatch):
    monkeypatch.setattr(speedups, "cpu_pays_for", lambda name: True)
    cfg = Config.from_profile("quick", **TINY_STEP)
    step = TrainingStep(cfg, torch.device("cpu"))
    images, labels = blob_batches(1)[0]
    seen = []
    step.model.encoder[0][0].register_forward_hook(lambda m, i, out: seen.append(out))  # the first convolution
    loss = step.loss(images, labels)
    assert seen[0].dtype == torch.bfloat16 and seen[0].is_contiguous(memory_format=torch.channels_last_3d)
    assert loss.dtype == torch.float32 and loss.requires_grad
    step.update(loss)
    assert all(p.dtype == torch.float32 for p in step.model.parameters())  # Adam updates float32 weights
    assert step.optimizer.param_groups[0]["fused"] is True
