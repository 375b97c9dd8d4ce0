#!/usr/bin/env python3
"""Convert the all-MiniLM-L6-v2 safetensors weights into an fp32 ONNX graph.

No torch: the BERT encoder is written out node by node with `onnx.helper`, and
the weights come straight from `model.safetensors`. The graph takes
`input_ids`, `attention_mask` and `token_type_ids` ([batch, seq] int64) and
returns `last_hidden_state` ([batch, seq, hidden] f32), which is what fastembed
mean-pools for a user-defined model.

`--reference OUT.json` also writes reference sentence embeddings computed by a
separate numpy forward pass in float64 over the same safetensors (mean pooling
over the attention mask, then L2 normalisation). The Rust embedder's parity
test compares its ONNX output against them, so a mistake in the graph cannot
hide behind a matching mistake in the reference: the two share only the
weights and the tokenizer.

The output is deterministic (fixed node order, fixed initializer order, no
producer timestamps), so scripts/setup can pin its sha256.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17  # LayerNormalization is a standard op from opset 17.

# Sentences for the parity reference: code, prose, a long text that is
# truncated, punctuation, non-ASCII and an empty string.
REFERENCE_TEXTS = [
    "fn main() { println!(\"hello, world\"); }",
    "How do I roll back the production index to the previous release?",
    "The quick brown fox jumps over the lazy dog.",
    "def parse_config(path):\n    with open(path) as f:\n        return json.load(f)\n",
    "Ünïcödé tëxt, emoji 🚀 and CJK 漢字 survive tokenisation.",
    "",
    " ".join(["retrieval bundles are immutable and content addressed"] * 60),
]


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu":
        sys.exit(f"error: {model_dir}/config.json is not a BERT model with gelu; this converter only knows BERT")
    return cfg


def build_graph(weights, cfg):
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(cfg["layer_norm_eps"])
    nodes = []
    inits = []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const_i64(name, values):
        return init(name, np.asarray(values, dtype=np.int64))

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))
        return outputs[0]

    def w(name):
        return weights[name].astype(np.float32)

    def linear(x, prefix, out):
        # Stored transposed so the graph does x @ W^T as a plain MatMul.
        wt = init(prefix + ".weight_t", w(prefix + ".weight").T)
        b = init(prefix + ".bias", w(prefix + ".bias"))
        mm = node("MatMul", [x, wt], [out + "_mm"])
        return node("Add", [mm, b], [out])

    def layer_norm(x, prefix, out):
        g = init(prefix + ".weight", w(prefix + ".weight"))
        b = init(prefix + ".bias", w(prefix + ".bias"))
        return node("LayerNormalization", [x, g, b], [out], axis=-1, epsilon=eps)

    # Embeddings: word + position + token type, then LayerNorm.
    word = init("embeddings.word", w("embeddings.word_embeddings.weight"))
    pos = init("embeddings.position", w("embeddings.position_embeddings.weight"))
    ttype = init("embeddings.token_type", w("embeddings.token_type_embeddings.weight"))
    const_i64("c_one_1d", [1])
    const_i64("c_heads_shape_tail", [heads, head_dim])
    const_i64("c_hidden_1d", [hidden])
    const_i64("c_axes_1_2", [1, 2])
    shape = node("Shape", ["input_ids"], ["input_shape"])
    const_i64("c_two_1d", [2])
    seq_len_1d = node("Slice", [shape, "c_one_1d", "c_two_1d"], ["seq_len_1d"])
    e_word = node("Gather", [word, "input_ids"], ["e_word"], axis=0)
    # Positions 0..seq are the first seq rows of the table: a Slice, not a
    # Range + Gather (an ONNX Runtime optimiser pass rewrites that pair into
    # a Slice with scalar starts, which then fails at run time).
    const_i64("c_zero_1d", [0])
    e_pos = node("Slice", [pos, "c_zero_1d", seq_len_1d, "c_zero_1d"], ["e_pos"])
    e_type = node("Gather", [ttype, "token_type_ids"], ["e_type"], axis=0)
    e_sum = node("Add", [node("Add", [e_word, e_pos], ["e_wp"]), e_type], ["e_sum"])
    h = layer_norm(e_sum, "embeddings.LayerNorm", "emb_out")

    # Additive attention mask: 0 where attended, float32 min where padded, as
    # the reference implementation does.
    mask_f = node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT)
    init("c_one_f", np.asarray(1.0, dtype=np.float32))
    init("c_neg_f", np.asarray(np.finfo(np.float32).min, dtype=np.float32))
    inv = node("Sub", ["c_one_f", mask_f], ["mask_inv"])
    neg = node("Mul", [inv, "c_neg_f"], ["mask_neg"])
    add_mask = node("Unsqueeze", [neg, "c_axes_1_2"], ["mask_add"])  # [B,1,1,S]

    # [B,S,hidden] -> [B,S,heads,head_dim]: batch and seq are taken from the input.
    bs = node("Slice", [shape, "c_zero_1d", "c_two_1d"], ["batch_seq"])
    split_shape = node("Concat", [bs, "c_heads_shape_tail"], ["split_shape"], axis=0)
    merge_shape = node("Concat", [bs, "c_hidden_1d"], ["merge_shape"], axis=0)
    init("c_scale", np.asarray(1.0 / math.sqrt(head_dim), dtype=np.float32))
    init("c_sqrt2", np.asarray(math.sqrt(2.0), dtype=np.float32))
    init("c_half", np.asarray(0.5, dtype=np.float32))

    def gelu(x, out):
        # Exact (erf) GELU, BERT's "gelu": 0.5 * x * (1 + erf(x / sqrt(2))).
        div = node("Div", [x, "c_sqrt2"], [out + "_div"])
        erf = node("Erf", [div], [out + "_erf"])
        plus = node("Add", [erf, "c_one_f"], [out + "_plus"])
        mul = node("Mul", [x, plus], [out + "_mul"])
        return node("Mul", [mul, "c_half"], [out])

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        t = f"l{i}"

        def heads_of(x, name, perm):
            r = node("Reshape", [x, split_shape], [name + "_r"])
            return node("Transpose", [r], [name + "_t"], perm=perm)

        q = heads_of(linear(h, p + ".attention.self.query", t + "_q"), t + "_q", [0, 2, 1, 3])
        k = heads_of(linear(h, p + ".attention.self.key", t + "_k"), t + "_k", [0, 2, 3, 1])
        v = heads_of(linear(h, p + ".attention.self.value", t + "_v"), t + "_v", [0, 2, 1, 3])
        scores = node("MatMul", [q, k], [t + "_scores"])
        scaled = node("Mul", [scores, "c_scale"], [t + "_scaled"])
        masked = node("Add", [scaled, add_mask], [t + "_masked"])
        probs = node("Softmax", [masked], [t + "_probs"], axis=-1)
        ctx = node("MatMul", [probs, v], [t + "_ctx"])
        ctx_t = node("Transpose", [ctx], [t + "_ctx_t"], perm=[0, 2, 1, 3])
        ctx_m = node("Reshape", [ctx_t, merge_shape], [t + "_ctx_m"])
        attn = linear(ctx_m, p + ".attention.output.dense", t + "_attn")
        attn_res = node("Add", [attn, h], [t + "_attn_res"])
        h1 = layer_norm(attn_res, p + ".attention.output.LayerNorm", t + "_h1")
        inter = linear(h1, p + ".intermediate.dense", t + "_inter")
        act = gelu(inter, t + "_gelu")
        out = linear(act, p + ".output.dense", t + "_out")
        out_res = node("Add", [out, h1], [t + "_out_res"])
        h = layer_norm(out_res, p + ".output.LayerNorm", t + "_h2")

    node("Identity", [h], ["last_hidden_state"])

    ids = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ids]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])]
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shelf-convert-minilm")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def reference_embeddings(weights, cfg, tokenizer_path, max_length):
    """A plain float64 numpy BERT forward pass, independent of the ONNX graph."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = hidden // heads
    eps = cfg["layer_norm_eps"]
    W = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype != np.int64}

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * W[p + ".weight"] + W[p + ".bias"]

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    erf = np.vectorize(math.erf)
    out = []
    for text in REFERENCE_TEXTS:
        enc = tok.encode(text)
        ids = np.asarray(enc.ids)
        types = np.asarray(enc.type_ids)
        n = len(ids)
        x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] + W["embeddings.token_type_embeddings.weight"][types]
        x = ln(x, "embeddings.LayerNorm")
        for i in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q = lin(x, p + ".attention.self.query").reshape(n, heads, hd).transpose(1, 0, 2)
            k = lin(x, p + ".attention.self.key").reshape(n, heads, hd).transpose(1, 0, 2)
            v = lin(x, p + ".attention.self.value").reshape(n, heads, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s = s / s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = ln(lin(ctx, p + ".attention.output.dense") + x, p + ".attention.output.LayerNorm")
            inter = lin(x, p + ".intermediate.dense")
            inter = 0.5 * inter * (1.0 + erf(inter / math.sqrt(2.0)))
            x = ln(lin(inter, p + ".output.dense") + x, p + ".output.LayerNorm")
        pooled = x.mean(0)
        pooled = pooled / np.linalg.norm(pooled)
        out.append({"text": text, "tokens": n, "embedding": [round(float(f), 8) for f in pooled]})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True, help="directory with model.safetensors, config.json, tokenizer.json")
    ap.add_argument("--out", required=True, help="path of the ONNX file to write")
    ap.add_argument("--reference", help="also write reference embeddings (JSON) to this path")
    ap.add_argument("--max-length", type=int, default=256, help="token limit used for the reference embeddings")
    args = ap.parse_args()

    cfg = load_config(args.model_dir)
    weights = load_file(os.path.join(args.model_dir, "model.safetensors"))
    model = build_graph(weights, cfg)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, opset {OPSET})")

    if args.reference:
        refs = reference_embeddings(weights, cfg, os.path.join(args.model_dir, "tokenizer.json"), args.max_length)
        doc = {"model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "normalized": True, "max_length": args.max_length, "texts": refs}
        tmp = args.reference + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
        os.replace(tmp, args.reference)
        print(f"wrote {args.reference} ({len(refs)} reference embeddings)")


if __name__ == "__main__":
    main()
