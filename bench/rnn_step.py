"""LSTM steps on kiln vs onnxruntime, measured back to back in one process.

usage: /opt/kiln-venv/bin/python bench/rnn_step.py [--lib build/libkiln.so] [--base-lib OTHER.so]
                                                  [--threads 1] [--rounds 7] [--block-ms 20]

Cases: a single LSTM node (batch 1, weights as initializers, h0/c0 fed) at
hidden 64, 128, 256, input 64..257, seq_length 1 and 8; and the committed
streaming model tests/models/lstm_state on its committed inputs. Both
engines are called from Python with their inputs made once: kiln through
ctypes over the shared library (kiln_session_run), onnxruntime through an
IOBinding (inputs bound once, outputs allocated by the session), so the
per-call overhead of each binding is small next to the work. Each round
times a block of calls of every engine in turn; the table shows the median
over rounds of microseconds per call and the ratio kiln/onnxruntime (lower
is better). --base-lib times a second kiln library (say, an older build) in
the same rounds and adds its column and ratio.
"""
import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KILN_DTYPE_FLOAT = 1


class Kiln:
    """The few C API calls the benchmark needs, over one libkiln.so."""

    def __init__(self, path):
        L = ctypes.CDLL(os.path.abspath(path))
        vp, i64p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)
        L.kiln_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
        L.kiln_session_create.argtypes = [vp, ctypes.c_void_p, ctypes.POINTER(vp)]
        L.kiln_tensor_wrap.argtypes = [ctypes.c_int, ctypes.c_int, i64p, vp, ctypes.c_size_t, vp, vp,
                                       ctypes.POINTER(vp)]
        L.kiln_session_run.argtypes = [vp, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(vp),
                                       ctypes.c_size_t, vp, ctypes.POINTER(vp)]
        L.kiln_tensor_destroy.argtypes = [vp]
        L.kiln_session_destroy.argtypes = [vp]
        L.kiln_model_destroy.argtypes = [vp]
        L.kiln_model_output_count.argtypes = [vp]
        L.kiln_model_output_count.restype = ctypes.c_size_t
        L.kiln_last_error.restype = ctypes.c_char_p
        self.L = L

    def check(self, st, what):
        if st != 0:
            raise RuntimeError("kiln %s: %s" % (what, self.L.kiln_last_error().decode()))

    def session(self, path, feeds, threads):
        return KilnSession(self, path, feeds, threads)


class KilnSession:
    def __init__(self, k, path, feeds, threads):
        L = k.L
        self.k = k
        self.model = ctypes.c_void_p()
        k.check(L.kiln_model_load(path.encode(), ctypes.byref(self.model)), "load")
        opts = (ctypes.c_int * 4)(threads, 0, 0, 0)  # {int threads; size_t max_tensor_bytes}
        self.sess = ctypes.c_void_p()
        k.check(L.kiln_session_create(self.model, ctypes.cast(opts, ctypes.c_void_p), ctypes.byref(self.sess)),
                "session")
        self.arrays = [np.ascontiguousarray(a) for a in feeds.values()]
        n = len(self.arrays)
        self.names = (ctypes.c_char_p * n)(*[s.encode() for s in feeds])
        self.ins = (ctypes.c_void_p * n)()
        self.dims = []
        for i, a in enumerate(self.arrays):
            d = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
            self.dims.append(d)
            t = ctypes.c_void_p()
            k.check(L.kiln_tensor_wrap(KILN_DTYPE_FLOAT, a.ndim, d, a.ctypes.data, a.nbytes, None, None,
                                       ctypes.byref(t)), "wrap")
            self.ins[i] = t
        self.n_in = n
        self.n_out = L.kiln_model_output_count(self.model)
        self.outs = (ctypes.c_void_p * self.n_out)()

    def run(self, calls):
        L, s, names, ins, outs, n_in, n_out = (self.k.L, self.sess, self.names, self.ins, self.outs, self.n_in,
                                               self.n_out)
        run, destroy = L.kiln_session_run, L.kiln_tensor_destroy
        for _ in range(calls):
            if run(s, n_in, names, ins, n_out, None, outs) != 0:
                raise RuntimeError("kiln run: %s" % L.kiln_last_error().decode())
            for i in range(n_out):
                destroy(outs[i])

    def close(self):
        for i in range(self.n_in):
            self.k.L.kiln_tensor_destroy(self.ins[i])
        self.k.L.kiln_session_destroy(self.sess)
        self.k.L.kiln_model_destroy(self.model)


class OrtSession:
    def __init__(self, path, feeds, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.io = self.sess.io_binding()
        self.feeds = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        for k, v in self.feeds.items():
            self.io.bind_cpu_input(k, v)
        for o in self.sess.get_outputs():
            self.io.bind_output(o.name, "cpu")

    def run(self, calls):
        sess, io = self.sess, self.io
        for _ in range(calls):
            sess.run_with_iobinding(io)

    def close(self):
        pass


def lstm_model(path, hidden, inp, seq, rng):
    G = 4
    w = rng.uniform(-0.3, 0.3, (1, G * hidden, inp)).astype(np.float32)
    r = rng.uniform(-0.3, 0.3, (1, G * hidden, hidden)).astype(np.float32)
    b = rng.uniform(-0.3, 0.3, (1, 2 * G * hidden)).astype(np.float32)
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h", "Y_c"], hidden_size=hidden)
    g = helper.make_graph(
        [node], "lstm_step",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, 1, inp]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, hidden]),
         helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, 1, hidden])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, 1, 1, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, hidden]),
         helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, 1, hidden])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(b, "B")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.save(m, path)
    feeds = {"X": rng.uniform(-1, 1, (seq, 1, inp)).astype(np.float32),
             "h0": rng.uniform(-1, 1, (1, 1, hidden)).astype(np.float32),
             "c0": rng.uniform(-1, 1, (1, 1, hidden)).astype(np.float32)}
    return feeds


def time_block(s, calls):
    t0 = time.perf_counter()
    s.run(calls)
    return (time.perf_counter() - t0) / calls * 1e6


def bench(engines, rounds, block_ms):
    """engines: list of sessions; returns median us/call per engine."""
    for s in engines:
        s.run(20)  # warm up
    calls = []
    for s in engines:  # calls per block, so a block takes about block_ms
        us = time_block(s, 50)
        calls.append(max(20, int(block_ms * 1e3 / max(us, 0.1))))
    times = [[] for _ in engines]
    for _ in range(rounds):
        for i, s in enumerate(engines):
            times[i].append(time_block(s, calls[i]))
    return [statistics.median(t) for t in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libkiln.so"))
    ap.add_argument("--base-lib", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block-ms", type=float, default=20)
    a = ap.parse_args()

    libs = [("kiln", Kiln(a.lib))]
    if a.base_lib:
        libs.append(("base", Kiln(a.base_lib)))
    rng = np.random.default_rng(0)
    cases = []
    tmp = tempfile.mkdtemp(prefix="kiln_rnn_step_")
    for hidden, inp in ((64, 64), (64, 257), (128, 128), (128, 257), (256, 64), (256, 257)):
        for seq in (1, 8):
            path = os.path.join(tmp, "lstm_h%d_i%d_s%d.onnx" % (hidden, inp, seq))
            feeds = lstm_model(path, hidden, inp, seq, rng)
            cases.append(("LSTM h%d i%d seq%d" % (hidden, inp, seq), path, feeds))
    mdir = os.path.join(ROOT, "tests", "models", "lstm_state")
    if os.path.exists(os.path.join(mdir, "model.onnx")):
        feeds = {n: np.load(os.path.join(mdir, "input_%s.npy" % n)) for n in ("x", "h0", "c0")}
        cases.append(("lstm_state (b2 t6)", os.path.join(mdir, "model.onnx"), feeds))

    head = "%-22s%10s%10s%10s" % ("case", "kiln us", "ort us", "kiln/ort")
    if a.base_lib:
        head += "%10s%10s" % ("base us", "kiln/base")
    print("threads %d, %d rounds, median us per call" % (a.threads, a.rounds))
    print(head)
    for name, path, feeds in cases:
        sess = [k.session(path, feeds, a.threads) for _, k in libs]
        sess.insert(1, OrtSession(path, feeds, a.threads))
        t = bench(sess, a.rounds, a.block_ms)
        line = "%-22s%10.2f%10.2f%10.2f" % (name, t[0], t[1], t[0] / t[1])
        if a.base_lib:
            line += "%10.2f%10.2f" % (t[2], t[0] / t[2])
        print(line)
        sys.stdout.flush()
        for s in sess:
            s.close()


if __name__ == "__main__":
    main()
