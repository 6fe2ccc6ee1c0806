"""Writes the models of tests/models/<name>/ with today's PyTorch exporter.

Each model is small, built from a config with seeded random weights (nothing
is downloaded) and exported with torch.onnx.export(..., dynamo=True) at the
opset named. For each, tests/models/<name>/ gets:

  model.onnx      the export (weights inline, a few hundred KB at most)
  input_<k>.npy   the inputs, k = the graph input's name
  output_<k>.npy  torch's own outputs on them (eager, float32)
  meta.json       opset, torch version, inputs and outputs in order, the
                  symbolic dims and the values of this example ("dims"), and
                  "config": the inputs a user would bind when freezing, with
                  the value to bind; "stream": for models with recurrent
                  state, the `kiln run --state` pairs and the axis along
                  which chunks of the input equal one call on the whole,
                  and "auto" when `--state auto` must find the same pairs;
                  "step": the dims a one-step model is frozen with (one
                  token per call, the cache's length left symbolic)

The files are the test data of tests/python/test_dynamo_models.py, which
needs no torch. Regenerate them (torch 2.x with onnxscript, never in CI):

  /opt/torch2/bin/python tests/models/make_dynamo_models.py [NAME...]
"""
import json
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BYTES = 300 * 1024


# ---------------------------------------------------------------- models

class DecoderBlock(nn.Module):
    """A LLaMA-style decoder layer with a KV cache: RMSNorm (RMSNormalization
    at opset 23), grouped-query attention with rotary position embeddings at
    the positions past .. past + seq - 1, the new keys/values appended to
    the past ones (present_* outputs), a causal mask built from the past and
    new lengths, F.scaled_dot_product_attention (an Attention node at opset
    23), and a SiLU-gated feed-forward."""

    def __init__(self, d=32, heads=4, kv_heads=2, ffn=64):
        super().__init__()
        self.h, self.kvh, self.dh = heads, kv_heads, d // heads
        self.norm1 = nn.RMSNorm(d, eps=1e-6)
        self.q = nn.Linear(d, heads * self.dh, bias=False)
        self.k = nn.Linear(d, kv_heads * self.dh, bias=False)
        self.v = nn.Linear(d, kv_heads * self.dh, bias=False)
        self.o = nn.Linear(heads * self.dh, d, bias=False)
        self.norm2 = nn.RMSNorm(d, eps=1e-6)
        self.gate = nn.Linear(d, ffn, bias=False)
        self.up = nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)
        self.register_buffer("inv_freq", 1.0 / (10000.0 ** (torch.arange(0, self.dh, 2).float() / self.dh)))

    def rope(self, x, cos, sin):
        x1, x2 = x[..., : self.dh // 2], x[..., self.dh // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(self, x, past_key, past_value):
        b, t, _ = x.shape
        p = past_key.shape[2]
        pos = torch.arange(t).float() + p
        f = torch.outer(pos, self.inv_freq)
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos(), emb.sin()
        hx = self.norm1(x)
        q = self.rope(self.q(hx).view(b, t, self.h, self.dh).transpose(1, 2), cos, sin)
        k = self.rope(self.k(hx).view(b, t, self.kvh, self.dh).transpose(1, 2), cos, sin)
        v = self.v(hx).view(b, t, self.kvh, self.dh).transpose(1, 2)
        k = torch.cat([past_key, k], 2)
        v = torch.cat([past_value, v], 2)
        # query i (at position p + i) sees keys 0 .. p + i
        qi = torch.arange(t).unsqueeze(1) + p
        kj = torch.arange(p + t).unsqueeze(0)
        mask = kj <= qi
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, self.h * self.dh))
        hx = self.norm2(x)
        x = x + self.down(F.silu(self.gate(hx)) * self.up(hx))
        return x, k, v


class AudioFrontEnd(nn.Module):
    """wav2vec2-style feature encoder: strided Conv1d layers, GroupNorm on the
    first, GELU after each, a projection; `gain` scales the waveform."""

    def __init__(self, c=16):
        super().__init__()
        self.conv0 = nn.Conv1d(1, c, 10, stride=5, bias=False)
        self.norm0 = nn.GroupNorm(4, c)
        self.conv1 = nn.Conv1d(c, c, 3, stride=2, bias=False)
        self.conv2 = nn.Conv1d(c, c, 2, stride=2, bias=False)
        self.proj = nn.Linear(c, 24)

    def forward(self, waveform, gain):
        x = (waveform * gain).unsqueeze(1)
        x = F.gelu(self.norm0(self.conv0(x)))
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        return self.proj(x.transpose(1, 2))


class BertEncoder(nn.Module):
    """BERT-style: word + position + token-type embeddings, LayerNorm,
    post-norm layers of multi-head self-attention (padding mask from
    attention_mask) and a GELU feed-forward; a tanh pooler on [CLS]."""

    def __init__(self, vocab=64, d=32, heads=4, layers=2, ffn=64, max_pos=32):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.word = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_pos, d)
        self.tok_type = nn.Embedding(2, d)
        self.emb_norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(nn.ModuleDict(dict(
                qkv=nn.Linear(d, 3 * d), out=nn.Linear(d, d), norm1=nn.LayerNorm(d, eps=1e-12),
                ff1=nn.Linear(d, ffn), ff2=nn.Linear(ffn, d), norm2=nn.LayerNorm(d, eps=1e-12))))
        self.pool = nn.Linear(d, d)

    def forward(self, input_ids, token_type_ids, attention_mask):
        b, s = input_ids.shape
        pos = torch.arange(s).unsqueeze(0)
        x = self.emb_norm(self.word(input_ids) + self.pos(pos) + self.tok_type(token_type_ids))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for L in self.layers:
            q, k, v = L["qkv"](x).view(b, s, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) / (self.dh ** 0.5) + bias
            a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, -1)
            x = L["norm1"](x + L["out"](a))
            x = L["norm2"](x + L["ff2"](F.gelu(L["ff1"](x))))
        return x, torch.tanh(self.pool(x[:, 0]))


class CondModel(nn.Module):
    """Two torch.cond: one on a flag input (a configuration a user binds),
    one on the data (x.sum() > 0), each branch with its own weights."""

    def __init__(self, d=8):
        super().__init__()
        self.a = nn.Linear(d, d)
        self.b = nn.Linear(d, d)
        self.c = nn.Linear(d, d)

    def forward(self, x, use_residual):
        def with_res(x):
            return x + torch.relu(self.a(x))

        def without(x):
            return torch.tanh(self.b(x))

        y = torch.cond(use_residual, with_res, without, (x,))

        def pos(y):
            return self.c(y) * 2.0

        def neg(y):
            return y.abs() - 1.0

        return torch.cond(y.sum() > 0, pos, neg, (y,))


class LstmModel(nn.Module):
    """A two-layer LSTM whose state (h, c) is an input and an output, as a
    streaming model carries it, with a linear head."""

    def __init__(self, n_in=8, hidden=16, layers=2):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 4)

    def forward(self, x, h0, c0):
        y, (h, c) = self.lstm(x, (h0, c0))
        return self.head(y), h, c


class SmallCnn(nn.Module):
    """Conv + BatchNorm (eval, running stats) + ReLU, max and average pooling,
    a bilinear and a nearest resize (an FPN-style merge), a BatchNorm after
    the merge (the exporter folds the ones after a Conv into its weights, not
    this one), global pooling and a linear classifier. Height and width are
    dynamic multiples of 8."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1)
        self.lat = nn.Conv2d(8, 16, 1)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, image):
        f1 = F.max_pool2d(F.relu(self.bn1(self.c1(image))), 2)             # /2
        f2 = F.relu(self.bn2(self.c2(f1)))                               # /4
        f3 = F.avg_pool2d(F.relu(self.c3(f2)), 2)                        # /8
        up = F.interpolate(f3, scale_factor=2.0, mode="bilinear", align_corners=False)
        m = self.bn3(F.interpolate(up + f2, scale_factor=2.0, mode="nearest") + self.lat(f1))
        return self.fc(m.mean((2, 3))), m


def randomize_bn(m, g):
    """BatchNorm with non-trivial running statistics and affine weights."""
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


# ---------------------------------------------------------------- cases

def decoder_case():
    m = DecoderBlock()
    g = torch.Generator().manual_seed(1)
    b, t, p = 2, 3, 5
    inputs = dict(x=torch.randn(b, t, 32, generator=g),
                  past_key=torch.randn(b, 2, p, 8, generator=g),
                  past_value=torch.randn(b, 2, p, 8, generator=g))
    batch, seq, past = Dim("batch", min=1, max=64), Dim("seq", min=1, max=512), Dim("past", min=1, max=512)
    dyn = dict(x={0: batch, 1: seq}, past_key={0: batch, 2: past}, past_value={0: batch, 2: past})
    return m, inputs, dyn, ["y", "present_key", "present_value"], {}, dict(state=["past_*=present_*"], axis=1, step={"seq": 1, "batch": b})


def audio_case():
    m = AudioFrontEnd()
    g = torch.Generator().manual_seed(2)
    inputs = dict(waveform=torch.randn(2, 400, generator=g), gain=torch.tensor(0.8))
    dyn = dict(waveform={0: Dim("batch", min=1, max=64), 1: Dim("samples", min=40, max=160000)}, gain=None)
    return m, inputs, dyn, ["features"], {"gain": 0.8}, None


def bert_case():
    m = BertEncoder()
    g = torch.Generator().manual_seed(3)
    b, s = 2, 7
    ids = torch.randint(0, 64, (b, s), generator=g)
    types = torch.zeros(b, s, dtype=torch.int64)
    types[:, 4:] = 1
    mask = torch.ones(b, s, dtype=torch.int64)
    mask[1, 5:] = 0
    inputs = dict(input_ids=ids, token_type_ids=types, attention_mask=mask)
    batch, seq = Dim("batch", min=1, max=64), Dim("seq", min=2, max=32)
    dyn = {k: {0: batch, 1: seq} for k in inputs}
    return m, inputs, dyn, ["last_hidden_state", "pooler_output"], {}, None


def cond_case():
    m = CondModel()
    g = torch.Generator().manual_seed(4)
    inputs = dict(x=torch.randn(3, 8, generator=g), use_residual=torch.tensor(True))
    dyn = dict(x={0: Dim("batch", min=1, max=64)}, use_residual=None)
    return m, inputs, dyn, ["y"], {"use_residual": True}, None


def lstm_case():
    m = LstmModel()
    g = torch.Generator().manual_seed(5)
    b, t = 2, 6
    inputs = dict(x=torch.randn(b, t, 8, generator=g),
                  h0=torch.randn(2, b, 16, generator=g) * 0.5,
                  c0=torch.randn(2, b, 16, generator=g) * 0.5)
    batch, time = Dim("batch", min=1, max=64), Dim("time", min=2, max=1000)
    dyn = dict(x={0: batch, 1: time}, h0={1: batch}, c0={1: batch})
    return m, inputs, dyn, ["y", "h", "c"], {}, dict(state=["h0=h", "c0=c"], axis=1, auto=True)


def cnn_case():
    m = SmallCnn()
    g = torch.Generator().manual_seed(6)
    randomize_bn(m, g)
    inputs = dict(image=torch.randn(1, 3, 32, 48, generator=g))
    dyn = dict(image={0: Dim("batch", min=1, max=64), 2: 8 * Dim("h8", min=1, max=64),
                      3: 8 * Dim("w8", min=1, max=64)})
    return m, inputs, dyn, ["logits", "features"], {}, None


# name: (case, opset)
CASES = {
    "decoder_kv_opset23": (decoder_case, 23),
    "decoder_kv_opset18": (decoder_case, 18),
    "audio_frontend": (audio_case, 21),
    "bert_encoder": (bert_case, 18),
    "cond_branches": (cond_case, 18),
    "lstm_state": (lstm_case, 18),
    "small_cnn": (cnn_case, 18),
}


def sym_dims(model):
    """{symbol: [(input, axis)]} of the graph inputs' symbolic dims."""
    out = {}
    for i in model.graph.input:
        for ax, d in enumerate(i.type.tensor_type.shape.dim):
            if d.dim_param:
                out.setdefault(d.dim_param, []).append([i.name, ax])
    return out


def build(name):
    case, opset = CASES[name]
    torch.manual_seed(0)
    m, inputs, dyn, out_names, config, stream = case()
    m = m.eval()
    args = tuple(inputs.values())
    with torch.no_grad():
        ref = m(*args)
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(m, args, dynamo=True, opset_version=opset,
                                 input_names=list(inputs), output_names=out_names,
                                 dynamic_shapes=tuple(dyn[k] for k in inputs), external_data=False, verbose=False)
    prog.save(path, external_data=False)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    size = os.path.getsize(path)
    assert size <= MAX_BYTES, "%s: %d bytes" % (name, size)
    names_in = [i.name for i in model.graph.input]
    names_out = [o.name for o in model.graph.output]
    assert names_in == list(inputs), (names_in, list(inputs))
    assert names_out == out_names, (names_out, out_names)
    for f in os.listdir(d):
        if f.endswith(".npy"):
            os.remove(os.path.join(d, f))
    for k, v in inputs.items():
        np.save(os.path.join(d, "input_%s.npy" % k), v.numpy())
    for k, v in zip(out_names, ref):
        np.save(os.path.join(d, "output_%s.npy" % k), v.numpy())
    syms = sym_dims(model)
    dims = {s: int(inputs[where[0][0]].shape[where[0][1]]) for s, where in syms.items()}
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    meta = dict(
        name=name,
        doc=" ".join((type(m).__doc__ or "").split()),
        opset=opset,
        opset_import={o.domain or "ai.onnx": o.version for o in model.opset_import},
        torch=torch.__version__,
        onnxscript=__import__("onnxscript").__version__,
        inputs=names_in,
        outputs=names_out,
        dims=dims,
        dim_inputs=syms,
        config=config,
        stream=stream,
        nodes=len(model.graph.node),
        functions=[f.name for f in model.functions],
        ops=dict(sorted(ops.items())),
    )
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("%-20s opset %d  %6d bytes  %3d nodes  dims %s  %s" % (
        name, opset, size, len(model.graph.node), dims, " ".join(sorted(ops))))


if __name__ == "__main__":
    for n in sys.argv[1:] or list(CASES):
        build(n)
