#!/usr/bin/env python3
"""Trains Jianmen's content model on the features `jianmen features` wrote, and exports it to ONNX.

The network: an embedding bag over the hashed features (mean of one 16-dimensional row per
feature) -> 32 ReLU units -> 3 classes (ham, spam, phish) with softmax. Plain numpy with Adam (lazy
for the embedding table), so it trains on 2 CPU cores in under two minutes with no deep-learning
framework; one training row in ten is held back to calibrate the probabilities (temperature
scaling, folded into the last layer). The ONNX graph is written by hand with the `onnx` helpers and
runs in tract (Rust) in the gateway.

    python3 gateway/model/train/train.py FEATURES.tsv OUT_DIR [--without-validation]

The shipped model trains on the train and validation splits. With --without-validation it leaves
the validation fold out, so that the verdict path can be judged on that fold by a word model that
never saw it (`jianmen eval --validation --model OUT_DIR/content.onnx`): what points or a combiner
are chosen on must not be mail the model learned (MODEL_CARD.md, the learned-combiner step).

writes OUT_DIR/content.onnx, OUT_DIR/metrics.json (per-corpus figures on the test split) and
OUT_DIR/parity.tsv (inputs and numpy outputs the Rust test compares tract against).
"""

import json
import sys
import time
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BUCKETS = 1 << 18  # must match gateway/scan/src/features.rs
MAX_FEATURES = 1024
DIM = 16
HIDDEN = 32
CLASSES = ["ham", "spam", "phish"]
EPOCHS = 6
BATCH = 128
LR = 0.01
SEED = 20261123


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            corpus, split, label, msg_path, feats = line.rstrip("\n").split("\t")
            idx = np.array([int(x) for x in feats.split()] if feats else [], dtype=np.int64)
            rows.append((corpus, split, CLASSES.index(label), msg_path, idx[:MAX_FEATURES]))
    rows.sort(key=lambda r: (r[0], r[3]))  # the file's order depends on threads
    return rows


class Model:
    def __init__(self, rng):
        self.E = (rng.standard_normal((BUCKETS, DIM)) * 0.1).astype(np.float32)
        self.E[0] = 0.0
        self.W1 = (rng.standard_normal((DIM, HIDDEN)) * np.sqrt(2.0 / DIM)).astype(np.float32)
        self.b1 = np.zeros(HIDDEN, dtype=np.float32)
        self.W2 = (rng.standard_normal((HIDDEN, len(CLASSES))) * np.sqrt(2.0 / HIDDEN)).astype(np.float32)
        self.b2 = np.zeros(len(CLASSES), dtype=np.float32)
        self.params = ["E", "W1", "b1", "W2", "b2"]
        self.m = {p: np.zeros_like(getattr(self, p)) for p in self.params}
        self.v = {p: np.zeros_like(getattr(self, p)) for p in self.params}
        self.t = 0

    def forward(self, batch):
        flat = np.concatenate([r for r in batch]) if batch else np.zeros(0, np.int64)
        counts = np.array([max(len(r), 1) for r in batch], dtype=np.float32)
        seg = np.repeat(np.arange(len(batch)), [len(r) for r in batch])
        h = np.zeros((len(batch), DIM), dtype=np.float32)
        np.add.at(h, seg, self.E[flat])
        h /= counts[:, None]
        z = h @ self.W1 + self.b1
        a = np.maximum(z, 0)
        logits = a @ self.W2 + self.b2
        return softmax(logits), (flat, counts, seg, h, z, a, logits)

    def step(self, batch, y, weights):
        p, (flat, counts, seg, h, z, a, _) = self.forward(batch)
        n = len(batch)
        g = p.copy()
        g[np.arange(n), y] -= 1.0
        g *= weights[:, None] / weights.sum()
        grads = {}
        grads["W2"] = a.T @ g
        grads["b2"] = g.sum(axis=0)
        ga = g @ self.W2.T
        gz = ga * (z > 0)
        grads["W1"] = h.T @ gz
        grads["b1"] = gz.sum(axis=0)
        gh = gz @ self.W1.T / counts[:, None]
        # Lazy Adam for the embedding table: only the rows this batch touched move, which is
        # what makes a 2^18-row table train in minutes.
        rows, inverse = np.unique(flat, return_inverse=True)
        gE = np.zeros((len(rows), DIM), dtype=np.float32)
        np.add.at(gE, inverse, gh[seg])
        gE[rows == 0] = 0.0
        self.t += 1
        mE = 0.9 * self.m["E"][rows] + 0.1 * gE
        vE = 0.999 * self.v["E"][rows] + 0.001 * gE * gE
        self.m["E"][rows], self.v["E"][rows] = mE, vE
        step = LR * (mE / (1 - 0.9 ** self.t)) / (np.sqrt(vE / (1 - 0.999 ** self.t)) + 1e-8)
        self.E[rows] -= step.astype(np.float32)
        for name in self.params[1:]:
            gr = grads[name]
            self.m[name] = 0.9 * self.m[name] + 0.1 * gr
            self.v[name] = 0.999 * self.v[name] + 0.001 * gr * gr
            mh = self.m[name] / (1 - 0.9 ** self.t)
            vh = self.v[name] / (1 - 0.999 ** self.t)
            setattr(self, name, (getattr(self, name) - LR * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32))
        self.E[0] = 0.0
        return -np.log(p[np.arange(n), y] + 1e-9).mean()

    def logits(self, rows):
        out = [self.forward(rows[i : i + 1024])[1][-1] for i in range(0, len(rows), 1024)]
        return np.concatenate(out) if out else np.zeros((0, 3), np.float32)

    def predict(self, rows):
        return softmax(self.logits(rows))

    def calibrate(self, rows, labels):
        """Temperature scaling on held-back training rows, folded into the last layer, so the
        probabilities the gateway reads are calibrated (the verdict's weights assume so)."""
        if len(rows) == 0:
            return 1.0
        logits = self.logits(rows)
        best = (np.inf, 1.0)
        for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 61)):
            p = softmax(logits / t)
            nll = -np.log(p[np.arange(len(labels)), labels] + 1e-12).mean()
            best = min(best, (nll, float(t)))
        self.W2 = (self.W2 / best[1]).astype(np.float32)
        self.b2 = (self.b2 / best[1]).astype(np.float32)
        return best[1]

    def to_onnx(self, path):
        # indices: [MAX_FEATURES] int64, padded with 0; weights: [1, MAX_FEATURES] float, 1/n for
        # each real feature and 0 for padding. The mean of the embedding rows is then one MatMul,
        # which runtimes do fast (a ReduceSum over the padded rows was the slow part in tract).
        nodes = [
            helper.make_node("Gather", ["E", "indices"], ["rows"], axis=0),
            helper.make_node("MatMul", ["weights", "rows"], ["mean"]),
            helper.make_node("MatMul", ["mean", "W1"], ["z0"]),
            helper.make_node("Add", ["z0", "b1"], ["z"]),
            helper.make_node("Relu", ["z"], ["a"]),
            helper.make_node("MatMul", ["a", "W2"], ["l0"]),
            helper.make_node("Add", ["l0", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ]
        inits = [
            numpy_helper.from_array(self.E, "E"),
            numpy_helper.from_array(self.W1, "W1"),
            numpy_helper.from_array(self.b1, "b1"),
            numpy_helper.from_array(self.W2, "W2"),
            numpy_helper.from_array(self.b2, "b2"),
        ]
        graph = helper.make_graph(
            nodes,
            "jianmen_content",
            [
                helper.make_tensor_value_info("indices", TensorProto.INT64, [MAX_FEATURES]),
                helper.make_tensor_value_info("weights", TensorProto.FLOAT, [1, MAX_FEATURES]),
            ],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="jianmen-train")
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, path)


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def held_back(path):
    """One training row in ten (by a hash of its path) calibrates instead of training."""
    return zlib.crc32(path.encode("utf-8")) % 10 == 0


def catch_at_fp(scores_pos, scores_neg, fp_rate):
    """Share of positives caught at the threshold that lets through at most fp_rate of negatives."""
    if len(scores_neg) == 0 or len(scores_pos) == 0:
        return None
    neg = np.sort(scores_neg)[::-1]
    k = int(np.floor(fp_rate * len(neg)))
    threshold = neg[k] if k < len(neg) else -np.inf
    return float((scores_pos > threshold).mean() * 100)


def roc_area(pos, neg):
    if len(pos) == 0 or len(neg) == 0:
        return None
    scores = np.concatenate([pos, neg])
    ranks = scores.argsort().argsort().astype(np.float64) + 1
    auc = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    return float(auc)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    if len(args) != 2 or any(f != "--without-validation" for f in flags):
        sys.exit(__doc__)
    features, out_dir = args
    fitted = {"train"} if flags else {"train", "validation"}
    rows = load(features)
    train = [r for r in rows if r[1] in fitted and not held_back(r[3])]
    calibration = [r for r in rows if r[1] in fitted and held_back(r[3])]
    test = [r for r in rows if r[1] == "test"]
    rng = np.random.default_rng(SEED)
    model = Model(rng)
    y = np.array([r[2] for r in train])
    # Each class weighs the same in the loss, whatever its count.
    class_w = np.array([len(y) / (3 * max((y == c).sum(), 1)) for c in range(3)], dtype=np.float32)
    started = time.time()
    for epoch in range(EPOCHS):
        order = rng.permutation(len(train))
        losses = []
        for i in range(0, len(order), BATCH):
            sel = order[i : i + BATCH]
            batch = [train[j][4] for j in sel]
            losses.append(model.step(batch, y[sel], class_w[y[sel]]))
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f} ({time.time() - started:.0f} s)", flush=True)
    temperature = model.calibrate([r[4] for r in calibration], np.array([r[2] for r in calibration]))
    print(f"calibrated on {len(calibration)} held-back rows: temperature {temperature:.3f}", flush=True)
    probs = model.predict([r[4] for r in test])
    metrics = {
        "train_messages": len(train), "calibration_messages": len(calibration), "temperature": temperature,
        "test_messages": len(test), "seconds": round(time.time() - started), "corpora": {},
    }
    for corpus in sorted({r[0] for r in rows} | {"all"}):
        sel = [i for i, r in enumerate(test) if corpus in ("all", r[0])]
        if not sel:
            continue
        lab = np.array([test[i][2] for i in sel])
        p = probs[sel]
        bad = p[:, 1] + p[:, 2]  # probability of not-ham
        ham, spam, phish = bad[lab == 0], bad[lab == 1], bad[lab == 2]
        pred_bad = bad >= 0.5
        m = {
            "messages": len(sel), "ham": int((lab == 0).sum()), "spam": int((lab == 1).sum()), "phish": int((lab == 2).sum()),
            "spam_caught_pct": float(pred_bad[lab == 1].mean() * 100) if (lab == 1).any() else None,
            "phish_caught_pct": float(pred_bad[lab == 2].mean() * 100) if (lab == 2).any() else None,
            "fp_pct": float(pred_bad[lab == 0].mean() * 100) if (lab == 0).any() else None,
        }
        auc = roc_area(np.concatenate([spam, phish]), ham)
        m["one_minus_roca_pct"] = None if auc is None else (1 - auc) * 100
        m["caught_at_fp_0.1_pct"] = catch_at_fp(np.concatenate([spam, phish]), ham, 0.001)
        m["caught_at_fp_0.02_pct"] = catch_at_fp(np.concatenate([spam, phish]), ham, 0.0002)
        metrics["corpora"][corpus] = m
        print(corpus, json.dumps(m))
    model.to_onnx(f"{out_dir}/content.onnx")
    with open(f"{out_dir}/metrics.json", "w") as f:
        json.dump(metrics, f, indent=1, sort_keys=True)
    with open(f"{out_dir}/parity.tsv", "w") as f:
        for i in range(0, len(test), max(len(test) // 40, 1)):
            idx = test[i][4]
            p = probs[i]
            f.write(" ".join(map(str, idx.tolist())) + "\t" + " ".join(f"{x:.7f}" for x in p) + "\n")


if __name__ == "__main__":
    main()
